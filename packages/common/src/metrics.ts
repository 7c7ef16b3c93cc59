// OpenTelemetry meters exported as Prometheus text. Each process builds one Metrics object; subsystems create
// their instruments next to the code that updates them: `metrics.meter.createCounter('kvfabric_pool_...')`.
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import type { Meter } from '@opentelemetry/api';

export type { Meter, Counter, Histogram, ObservableGauge, UpDownCounter, Attributes } from '@opentelemetry/api';

export { DURATION_BUCKETS_SECONDS } from './duration-buckets.js';

export class Metrics {
  readonly meter: Meter;
  private readonly exporter: PrometheusExporter;
  private readonly provider: MeterProvider;
  private readonly serializer = new PrometheusSerializer('', false);

  constructor(service: string) {
    // preventServerStart: the process's own HTTP server serves /metrics through text().
    this.exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
    this.provider = new MeterProvider({
      readers: [this.exporter],
      resource: resourceFromAttributes({ 'service.name': service }),
    });
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
