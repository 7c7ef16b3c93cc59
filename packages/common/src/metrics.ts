// OpenTelemetry meters exported as Prometheus text. Each process builds one Metrics object; subsystems create
// their instruments next to the code that updates them: `metrics.meter.createCounter('kvfabric_pool_...')`.
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import type { Meter } from '@opentelemetry/api';

export type { Meter, Counter, Histogram, ObservableGauge, UpDownCounter, Attributes } from '@opentelemetry/api';

/** Histogram buckets for RPC and transfer durations in seconds (50 µs .. 30 s). */
export const DURATION_BUCKETS_SECONDS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

export class Metrics {
  readonly meter: Meter;
  private readonly exporter: PrometheusExporter;
  private readonly provider: MeterProvider;
  private readonly serializer = new PrometheusSerializer('', false);

  constructor(service: string) {
    // preventServerStart: the process's own HTTP server serves /metrics through text().
    this.exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
    this.provider = new MeterProvider({ readers: [this.exporter], resource: resourceFromAttributes({ 'service.name': service }) });
    this.meter = this.provider.getMeter(service);
  }

  /** The Prometheus exposition text for GET /metrics. */
  async text(): Promise<string> {
    const { resourceMetrics, errors } = await this.exporter.collect();
    if (errors.length > 0) throw errors[0];
    return this.serializer.serialize(resourceMetrics);
  }

  async shutdown(): Promise<void> {
    await this.provider.shutdown();
  }
}
