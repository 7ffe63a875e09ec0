"""Prints bench/run's results as a table, with the ratios the targets are stated in."""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1])]
by = {(r["backend"], r["identities"], r["scenario"]): r for r in rows}


def rps(r):
    if "wrk" in r:
        ok = r["wrk"]["requests"] - r["wrk"]["non_2xx_3xx"] - r["wrk"]["socket_errors"]
        return ok / (r["wrk"]["duration_us"] / 1e6)
    return r.get("tps", 0.0)


print(f"\n{'backend':9} {'ids':>7} {'scenario':24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'errors':>7} {'CPU s':>7} {'RSS MB':>7}")
for r in rows:
    w = r.get("wrk")
    if w:
        errors = w["non_2xx_3xx"] + w["socket_errors"]
        print(f"{r['backend']:9} {r['identities']:>7} {r['scenario']:24} {rps(r):>9.0f} {w['p50_us']/1000:>8.2f} {w['p99_us']/1000:>8.2f} "
              f"{w['p999_us']/1000:>9.2f} {errors:>7} {r['cpu_seconds']:>7.1f} {r['peak_rss_mb']:>7.1f}")
    else:
        print(f"{r['backend']:9} {r['identities']:>7} {r['scenario']:24} {rps(r):>9.0f} {'avg ' + str(r['latency_avg_ms']):>8}")

print("\nratios and targets")
for (backend, size, scenario), r in sorted(by.items()):
    if scenario != "pythia_brainkey":
        continue
    quiet = by.get((backend, size, "lookup_single_quiet"))
    storm = by.get((backend, size, "lookup_single_storm"))
    line = f"  pythia ({backend} {size}): brainkey {rps(r):.0f} evaluations/s, p99 {r['wrk']['p99_us']/1000:.2f} ms"
    if quiet and storm:
        ratio = storm["wrk"]["p99_us"] / max(quiet["wrk"]["p99_us"], 1)
        line += (f"; single-lookup p99 {quiet['wrk']['p99_us']/1000:.2f} ms quiet, "
                 f"{storm['wrk']['p99_us']/1000:.2f} ms during a brainkey storm = {ratio:.2f}x (target <= 2)")
    print(line)
for (backend, size, scenario), r in sorted(by.items()):
    if scenario != "lookup_batch50":
        continue
    full = rps(r)
    line = f"  {backend} {size}: "
    ceiling = by.get((backend, size, "ceiling_lookup_batch50"))
    if ceiling:
        line += f"batch-50 / pgbench ceiling = {full / rps(ceiling):.2f} (target >= 0.7); "
    reval = by.get((backend, size, "revalidate_304"))
    if reval:
        line += f"304 / batch-50 = {rps(reval) / full:.2f} (target >= 3); "
    ceiling304 = by.get((backend, size, "ceiling_revalidate_304"))
    if reval and ceiling304:
        line += f"304 / its pgbench ceiling = {rps(reval) / rps(ceiling304):.2f}; "
    single = by.get((backend, size, "lookup_single"))
    if single:
        line += f"single p99 = {single['wrk']['p99_us']/1000:.2f} ms (target < 10); "
    publish = by.get((backend, size, "publish"))
    if publish:
        line += f"publish = {rps(publish):.0f}/s (target >= 1000); "
    peak = max(x["peak_rss_mb"] for x in rows if x["backend"] == backend and x["identities"] == size and "peak_rss_mb" in x)
    line += f"peak RSS = {peak:.0f} MB (target < 100)"
    print(line)
