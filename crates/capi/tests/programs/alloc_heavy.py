# An allocation-heavy workload with threads: each worker builds and tears down dicts, lists,
# strings and bytes, then the results are combined into one checksum printed at the end.
import hashlib
import threading

def work(seed, out):
    h = hashlib.sha256()
    table = {}
    for i in range(60000):
        key = "k%d-%d" % (seed, i % 5000)
        table[key] = [i, str(i) * (i % 7 + 1), bytes(i % 300)]
        if i % 3 == 0:
            table.pop("k%d-%d" % (seed, (i * 7) % 5000), None)
    for k in sorted(table):
        h.update(k.encode())
        h.update(table[k][1].encode())
    out[seed] = h.hexdigest()

results = {}
threads = [threading.Thread(target=work, args=(s, results)) for s in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("threads", len(results))
print("digest", hashlib.sha256("".join(results[s] for s in range(4)).encode()).hexdigest())
