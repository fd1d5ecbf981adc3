// Declarations of libFuzzer's C++ driver entry point (stable since LLVM 6), for building the
// Jazzer.js addon against Debian's stock compiler-rt instead of Jazzer's patched fork.
#pragma once
#include <cstddef>
#include <cstdint>
namespace fuzzer {
typedef int (*UserCallback)(const uint8_t *Data, size_t Size);
int FuzzerDriver(int *argc, char ***argv, UserCallback Callback);
} // namespace fuzzer
