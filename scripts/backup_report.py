"""The summary of scripts/backup_bench.sh: throughput and p99 per phase, the backups, restore and verify."""
import glob, json, os, re, sys
results, rounds, store = sys.argv[1], int(sys.argv[2]), sys.argv[3]
nicenesses = sys.argv[4].split() if len(sys.argv) > 4 else ["0", "10"]
def loadgen(label):
    return json.load(open(f"{results}/loadgen-{label}.json"))
print(f"store {store}; preload {loadgen('preload')['succeeded']} rewards")
print()
print("| round | phase | rewards/s | p99 ms | backups | backup s (each) | records | MiB |")
print("|---|---|---|---|---|---|---|---|")
ratios = {n: [] for n in nicenesses}
for r in range(1, rounds + 1):
    quiet = loadgen(f"quiet-{r}")
    print(f"| {r} | quiet | {quiet['succeededPerSec']:.0f} | {quiet['p99Ms']:.1f} | | | | |")
    for n in nicenesses:
        busy = loadgen(f"backup-n{n}-{r}")
        backups = [json.loads(line) for line in open(f"{results}/backups-n{n}-{r}.jsonl")]
        each = ", ".join(f"{b['server_ms'] / 1000:.1f}" for b in backups)
        print(f"| {r} | backups, niceness {n} | {busy['succeededPerSec']:.0f} | {busy['p99Ms']:.1f} | {len(backups)} | {each} | {backups[-1]['records']} | {backups[-1]['bytes'] / 2**20:.0f} |")
        ratios[n].append(busy["succeededPerSec"] / quiet["succeededPerSec"])
print()
for n in nicenesses:
    print(f"throughput during backups (niceness {n}) / quiet, per round: " + ", ".join(f"{x:.2f}" for x in ratios[n]))
start, end = map(float, open(f"{results}/restore-times.txt").read().split())
print(f"restore of the last backup: {end - start:.1f} s")
if os.path.exists(f"{results}/verify-times.txt"):
    start, end = map(float, open(f"{results}/verify-times.txt").read().split())
    log = open(f"{results}/verify.log").read()
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", log)
    print(f"verify of the restored directory: {end - start:.1f} s, peak RSS {int(rss.group(1)) // 1024 if rss else '?'} MiB")
