# threading and concurrent.futures doing real work; prints only results that
# do not depend on scheduling, so the native run and the run under
# green-run --threads print the same.
import concurrent.futures
import hashlib
import queue
import threading
import time

def digest(i):
    h = hashlib.sha256()
    for j in range(200):
        h.update(b"%d-%d" % (i, j))
    time.sleep(0.001)
    return i, h.hexdigest()[:12]

with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
    results = list(ex.map(digest, range(40)))
    futs = [ex.submit(pow, 3, k) for k in range(10)]
    done = sorted(f.result() for f in concurrent.futures.as_completed(futs))
print("map:", results[0], results[-1], len(results))
print("as_completed:", done)

# Lock and RLock: no increment lost.
lock, rlock = threading.Lock(), threading.RLock()
count = 0
def add(n):
    global count
    for _ in range(n):
        with lock:
            with rlock:
                with rlock:
                    c = count
                    if _ % 97 == 0:
                        time.sleep(0)
                    count = c + 1
ts = [threading.Thread(target=add, args=(500,)) for _ in range(6)]
[t.start() for t in ts]
[t.join() for t in ts]
print("count:", count)

# Condition + Queue: producer/consumer, items in order per producer.
q = queue.Queue(maxsize=5)
got = []
def producer(p):
    for i in range(20):
        q.put((p, i))
def consumer():
    while True:
        item = q.get()
        if item is None:
            q.task_done()
            return
        got.append(item)
        q.task_done()
cs = [threading.Thread(target=consumer) for _ in range(3)]
ps = [threading.Thread(target=producer, args=(p,)) for p in range(4)]
[t.start() for t in cs + ps]
[t.join() for t in ps]
q.join()
for _ in cs:
    q.put(None)
[t.join() for t in cs]
print("queue:", len(got), all([i for (p, i) in got if p == k] == list(range(20)) for k in range(4)))

cond = threading.Condition()
state = {"n": 0}
def waiter():
    with cond:
        cond.wait_for(lambda: state["n"] >= 3, timeout=5)
        state["woken"] = state.get("woken", 0) + 1
ws = [threading.Thread(target=waiter) for _ in range(4)]
[t.start() for t in ws]
for _ in range(3):
    time.sleep(0.01)
    with cond:
        state["n"] += 1
        cond.notify_all()
[t.join() for t in ws]
print("condition: woken", state["woken"])

# Event, Semaphore, Barrier, Timer, local.
ev = threading.Event()
sem = threading.BoundedSemaphore(2)
inside = {"now": 0, "max": 0}
barrier = threading.Barrier(5)
local = threading.local()
seen = []
def worker(i):
    local.value = i
    ev.wait()
    with sem:
        with lock:
            inside["now"] += 1
            inside["max"] = max(inside["max"], inside["now"])
        time.sleep(0.005)
        with lock:
            inside["now"] -= 1
    barrier.wait()
    seen.append(local.value == i)
ws = [threading.Thread(target=worker, args=(i,)) for i in range(5)]
[t.start() for t in ws]
t0 = time.monotonic()
fired = threading.Event()
timer = threading.Timer(0.05, fired.set)
timer.start()
print("event wait timeout:", ev.wait(0.02))
ev.set()
[t.join() for t in ws]
print("semaphore max inside:", inside["max"], "barrier passed:", len(seen), "local ok:", all(seen))
print("timer fired:", fired.wait(2), "not too early:", time.monotonic() - t0 >= 0.045)
print("lock timeout:", lock.acquire(), lock.acquire(timeout=0.02))
lock.release()
print("threads left:", threading.active_count())
