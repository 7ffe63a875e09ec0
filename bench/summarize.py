"""Prints bench/run's results as a table, with the ratios the targets are stated in.

Every ratio is between two figures of the same run (a ceiling is pgbench on the same database,
with the same connections, right after Cardinal's scenarios)."""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1])]
by = {(r["backend"], r["identities"], r["scenario"]): r for r in rows}


def rps(r):
    if "wrk" in r:
        ok = r["wrk"]["requests"] - r["wrk"]["non_2xx_3xx"] - r["wrk"]["socket_errors"]
        return ok / (r["wrk"]["duration_us"] / 1e6)
    return r.get("tps", 0.0)


def ms(r, field):
    return r["wrk"].get(field, 0) / 1000


def verdict(ok):
    return "met" if ok else "NOT met"


print(f"\n{'backend':9} {'ids':>7} {'scenario':26} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} "
      f"{'max ms':>8} {'errors':>7} {'t/o':>5} {'CPU s':>7} {'RSS MB':>7}")
for r in rows:
    w = r.get("wrk")
    conns = r.get("connections", "")
    if w:
        errors = w["non_2xx_3xx"] + w["socket_errors"]
        print(f"{r['backend']:9} {r['identities']:>7} {r['scenario']:26} {conns:>5} {rps(r):>9.0f} {ms(r, 'p50_us'):>8.2f} "
              f"{ms(r, 'p99_us'):>8.2f} {ms(r, 'p999_us'):>9.2f} {ms(r, 'max_us'):>8.1f} {errors:>7} {w.get('timeouts', 0):>5} "
              f"{r['cpu_seconds']:>7.1f} {r['peak_rss_mb']:>7.1f}")
    elif "tps" in r:
        print(f"{r['backend']:9} {r['identities']:>7} {r['scenario']:26} {conns:>5} {rps(r):>9.0f} {'avg ' + str(r['latency_avg_ms']):>8}")

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
    get = lambda name: by.get((backend, size, name))  # noqa: E731
    print(f"  {backend} {size}:")
    full = rps(r)
    ceiling = get("ceiling_lookup_batch50")
    if ceiling:
        ratio = full / max(rps(ceiling), 1e-9)
        print(f"    batch-50 uniform {full:.0f}/s / pgbench ceiling {rps(ceiling):.0f} = {ratio:.2f} "
              f"(target >= 1.5: {verdict(ratio >= 1.5)})")
    zipf = get("lookup_batch50_zipf")
    if zipf:
        line = f"    batch-50 Zipf {rps(zipf):.0f}/s"
        zceiling = get("ceiling_lookup_batch50_zipf")
        if zceiling:
            ratio = rps(zipf) / max(rps(zceiling), 1e-9)
            line += f" / pgbench Zipf ceiling {rps(zceiling):.0f} = {ratio:.2f} (target >= 3: {verdict(ratio >= 3)})"
        print(line)
    reval = get("revalidate_304")
    if reval:
        line = f"    304 / batch-50 = {rps(reval) / full:.2f} (target >= 3)"
        ceiling304 = get("ceiling_revalidate_304")
        if ceiling304:
            line += f"; 304 / its pgbench ceiling = {rps(reval) / max(rps(ceiling304), 1e-9):.2f}"
        print(line)
    single = get("lookup_single")
    if single:
        line = f"    single uniform {rps(single):.0f}/s, p99 {ms(single, 'p99_us'):.2f} ms (target < 10)"
        sceiling = get("ceiling_lookup_single")
        if sceiling:
            ratio = rps(single) / max(rps(sceiling), 1e-9)
            line += f"; / pgbench ceiling {rps(sceiling):.0f} = {ratio:.2f} (target >= 0.5: {verdict(ratio >= 0.5)})"
        print(line)
    szipf = get("lookup_single_zipf")
    if szipf:
        ok = rps(szipf) >= 25000 and ms(szipf, "p99_us") < 10
        line = (f"    single Zipf {rps(szipf):.0f}/s (target >= 25,000), p99 {ms(szipf, 'p99_us'):.2f} ms (target < 10): "
                f"{verdict(ok)}")
        zceiling = get("ceiling_lookup_single_zipf")
        if zceiling:
            line += f"; / pgbench Zipf ceiling {rps(zceiling):.0f} = {rps(szipf) / max(rps(zceiling), 1e-9):.2f}"
        print(line)
    c1000 = get("lookup_single_c1000")
    if c1000:
        w = c1000["wrk"]
        errors = w["non_2xx_3xx"] + w["socket_errors"]
        ok = errors == 0 and ms(c1000, "p99_us") < 50
        print(f"    single at {c1000.get('connections', 1000)} connections: {rps(c1000):.0f}/s, p99 {ms(c1000, 'p99_us'):.2f} ms "
              f"(target < 50), errors {errors} (non-2xx {w['non_2xx_3xx']}, socket {w['socket_errors']}, "
              f"timeouts {w.get('timeouts', 0)}; target 0): {verdict(ok)}; listen-queue overflows "
              f"{c1000.get('listen_overflows', '?')} (connections whose SYN the kernel dropped, retried after 1 s)")
    publishes = sorted((s, x) for (b, n, s), x in by.items() if b == backend and n == size and s.startswith("publish"))
    for name, p in publishes:
        w = p["wrk"]
        print(f"    {name} ({p.get('connections', '?')} writers): {rps(p):.0f}/s, p99 {ms(p, 'p99_us'):.1f} ms, "
              f"max {ms(p, 'max_us'):.1f} ms, failures: non-2xx {w['non_2xx_3xx']}, socket errors "
              f"{w['socket_errors'] - w.get('timeouts', 0)}, timeouts {w.get('timeouts', 0)}")
    publish = get("publish")
    if publish:
        print(f"    publish = {rps(publish):.0f}/s (target >= 1000)")
    off = get("publish_transparency_off")
    if off:
        # Transparency on: the last publish scenario before it with the same writers and duration,
        # else publish.
        same = [x for x in rows[:rows.index(off)] if x["backend"] == backend and x["identities"] == size
                and x["scenario"].startswith("publish") and x.get("connections") == off.get("connections")
                and x.get("duration_s") == off.get("duration_s")]
        on = same[-1] if same else publish
        if on:
            ratio = rps(on) / max(rps(off), 1e-9)
            print(f"    publish transparency on ({on['scenario']}) {rps(on):.0f}/s / off {rps(off):.0f}/s = {ratio:.2f} "
                  f"(target >= 0.9: {verdict(ratio >= 0.9)})")
    proofs = get("lookup_batch50_proofs")
    if proofs:
        ratio = proofs["wrk"]["p99_us"] / max(r["wrk"]["p99_us"], 1)
        print(f"    batch-50 proofs=true {rps(proofs):.0f}/s, p99 {ms(proofs, 'p99_us'):.2f} ms / plain batch-50 p99 "
              f"{ms(r, 'p99_us'):.2f} ms = {ratio:.2f}x (target <= 2: {verdict(ratio <= 2)})")
    size_row = get("proof_size")
    if size_row:
        print(f"    proof size: {size_row['proof_bytes_per_card']:.0f} bytes per card ({size_row['bytes_proofs']} - "
              f"{size_row['bytes_plain']} bytes over {size_row['cards']} cards; the log objects alone "
              f"{size_row['log_bytes_per_card']:.0f} bytes per card, the checkpoint {size_row['checkpoint_bytes']} bytes once; "
              f"tree of {size_row['tree_size']} entries, up to {size_row['inclusion_hashes']} hashes per proof)")
    peak = max(x["peak_rss_mb"] for x in rows if x["backend"] == backend and x["identities"] == size and "peak_rss_mb" in x)
    print(f"    peak RSS = {peak:.0f} MB (target < 100)")
