// Which holders a fetch may pull from now. A holder whose pull failed is skipped for a short back-off (it may be
// restarting or overloaded); a holder that served a page differing from its checksum is suspect for much longer
// (a damaged or hostile path, or holder): neither is tried again, however the metaserver ranks it, until its time
// is up. Pure: times are passed in.
export class HolderHealth {
  private readonly failedUntil = new Map<string, number>();
  private readonly suspectUntil = new Map<string, number>();

  constructor(private readonly opts: { backoffMs: number; suspectMs: number }) {}

  /** `id` failed a pull at `now`: skipped for the back-off. */
  failed(id: string, now: number): void {
    this.failedUntil.set(id, now + this.opts.backoffMs);
  }

  /** `id` served a page that differed from its checksum at `now`: suspect. */
  corrupt(id: string, now: number): void {
    this.suspectUntil.set(id, now + this.opts.suspectMs);
  }

  usable(id: string, now: number): boolean {
    return (this.failedUntil.get(id) ?? 0) <= now && (this.suspectUntil.get(id) ?? 0) <= now;
  }

  /** The holders suspect at `now` (and forgets those whose time is up). */
  suspects(now: number): string[] {
    const out: string[] = [];
    for (const [id, until] of this.suspectUntil) {
      if (until > now) out.push(id);
      else this.suspectUntil.delete(id);
    }
    for (const [id, until] of this.failedUntil) if (until <= now) this.failedUntil.delete(id);
    return out;
  }
}
