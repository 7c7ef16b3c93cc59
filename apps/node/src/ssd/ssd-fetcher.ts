// The fetch order of a query's missing suffix: the local SSD first, then remote peers (DESIGN §2). What the SSD
// promoted counts as `ssd` in the query's breakdown; the remote fetcher takes what is still missing after it.
import type { Fetcher, FetchOutcome, FetchRequest } from '../query-fetches.js';
import type { SsdPromoter } from './ssd-promoter.js';

export class SsdFirstFetcher implements Fetcher {
  constructor(
    private readonly ssd: SsdPromoter,
    private readonly remote: Fetcher | undefined,
  ) {}

  async fetch(req: FetchRequest): Promise<FetchOutcome> {
    const ssd = await this.ssd.promote(req.ns, req.packed, req.hashLen, req.from, req.count);
    if (!this.remote || req.from + ssd >= req.count) return { ssd, remote: 0 };
    const rest = await this.remote.fetch({ ...req, from: req.from + ssd });
    return { ssd, remote: rest.remote };
  }
}
