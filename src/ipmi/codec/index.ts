/** Pure IPMI codec: bytes in, typed values out, and back. No sockets, no state, no logging. */
export * from './result.js';
export * from './rmcp.js';
export * from './message.js';
export * from './v15.js';
export * from './suites.js';
export * from './rmcpplus.js';
export * from './rakp.js';
