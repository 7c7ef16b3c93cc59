// @kvfabric/common/observability: logs (pino), metrics (OpenTelemetry + Prometheus), the HTTP /health + /metrics
// endpoint and signal handling: what daemons need, and what pure cores must never import.
export * from './logger.js';
export * from './metrics.js';
export * from './gc-metrics.js';
export * from './http.js';
export * from './signals.js';
