// Glue between the Jazzer.js addon and stock libFuzzer: the "_with_pc" trace hooks of Jazzer's
// patched libFuzzer fork map onto the stock hooks, and the stock death callback registration
// feeds the addon's crash printer.
#include <cstdint>
namespace libfuzzer { extern void (*PrintCrashingInput)(); }
extern "C" {
void __sanitizer_cov_trace_const_cmp8(uint64_t a, uint64_t b);
void __sanitizer_cov_trace_pc_indir(uintptr_t callee);
void __sanitizer_cov_trace_const_cmp8_with_pc(uintptr_t, uint64_t a, uint64_t b) { __sanitizer_cov_trace_const_cmp8(a, b); }
void __sanitizer_cov_trace_pc_indir_with_pc(void *, uintptr_t callee) { __sanitizer_cov_trace_pc_indir(callee); }
void __sanitizer_set_death_callback(void (*cb)()) { libfuzzer::PrintCrashingInput = cb; }
}
