#!/usr/bin/env python3
"""One static-file case, servers alternating per round, with more than staticbench.py reads
(docs/static.md, "The 1 MB Connection: close gap"):

    flock /tmp/herdd-bench.lock python3 bench/static_ab.py nginx=nginx old=herdd:OLD_BIN new=herdd:NEW_BIN

Each argument is LABEL=nginx (staticbench's config), LABEL=nginx:PARAMS (the same with
`listen` parameters added, commas for spaces: nx=nginx:deferred) or LABEL=herdd:BINARY. Environment: FILE (1k.bin, 16k.bin, 1m.bin, 20m.bin; default 1m.bin), CONNS
(8), CLOSE (1: `Connection: close`), SECS (3), ROUNDS (3), CLIENT (wrk, or sink: bodies discarded in the
kernel; staticbench.sink); PERF=1 records the workers with
`perf record -e cpu-clock -g` (FREQ samples/s) and prints user and kernel µs per request and the
inclusive cost of the main system calls; ODD=1 prints the changed TCP error/probe counters; SYSCALLS=1 the server's system calls
(all, sendfile, epoll_wait, epoll_ctl, setsockopt) and context switches per response (perf stat);
SEGS=1 the server's sockets' own TCP counters (`ss -ti`, summed over its connections between 1 s
into the run and 0.5 s before its end; keep-alive cases, whose connections last the run): the
average data segment, data segments and segments in (the client's ACKs) per MB sent; and how many
of the client's sockets still have the smallest receive window threshold (`rcv_ssthresh`) at the
second sample: the kernel cuts segments to half the largest window the client advertised
(docs/static.md, "20 MB at 64 connections: the client's windows").
Per round: req/s (from 1 MB on by the bytes read: staticbench.rate); the server's CPU per request from /proc/PID/schedstat (ns, every process of
its group) and user/system from /proc/PID/stat (ticks, what staticbench reads); the client's own CPU
per request (its rusage); TCP segments per request (nstat, both directions). Then medians.
Every server it starts is stopped by PID (staticbench.stop)."""
import os, re, sys, subprocess, threading, time, resource, json, statistics
from pathlib import Path
sys.path[:0] = [str(Path(__file__).resolve().parent / "herdbench"), str(Path(__file__).resolve().parents[1] / "Tests" / "support")]
import staticbench as sb
from herdtest import free_port, process_group_pids, tcp_socket_info
servers = []
for a in sys.argv[1:]:
    label, spec = a.split("=", 1); kind, _, binary = spec.partition(":")
    servers.append((label, kind, binary or None))
fname = os.environ.get("FILE", "1m.bin"); conns = int(os.environ.get("CONNS", "8")); close = os.environ.get("CLOSE", "1") == "1"
secs = int(os.environ.get("SECS", "3")); rounds = int(os.environ.get("ROUNDS", "3"))
client = os.environ.get("CLIENT", "wrk")
if client not in ("wrk", "sink"):
    sys.exit("static_ab.py: CLIENT is wrk or sink")
tmp, root = sb.make_root()
sink_binary = sb.build_sink(tmp) if client == "sink" else None
tk = os.sysconf("SC_CLK_TCK")
def sched(pid): return int(open(f"/proc/{pid}/schedstat").read().split()[0])
def ut(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split(); return int(f[11]), int(f[12])
def nstat():
    return json.loads(subprocess.run(["nstat", "-a", "-z", "--json"], capture_output=True, text=True).stdout)["kernel"]
res = {l: [] for l, _, _ in servers}
def tcp_info(port, side):
    """`ss -ti` of the established sockets whose `side` (sport: the server's, dport: the client's) is `port`."""
    return tcp_socket_info(f"{side} = :{port}")
def tcp_counters(port):
    """bytes_sent, data_segs_out and segs_in summed over the server's established sockets."""
    out = tcp_info(port, "sport")
    return {k: sum(int(m.group(1)) for m in re.finditer(rf"(?<!\w){k}:(\d+)", out)) for k in ("bytes_sent", "data_segs_out", "segs_in")}
def sample_segments(port, secs, into):
    """SEGS=1: the counters' change over the middle of the run (a thread beside the load)."""
    def run():
        time.sleep(1.0); a = tcp_counters(port); time.sleep(max(0.5, secs - 1.5)); b = tcp_counters(port)
        into.update({k: b[k] - a[k] for k in a})
        th = [int(x) for x in re.findall(r"rcv_ssthresh:(\d+)", tcp_info(port, "dport"))]
        if th: into["clients"] = (sum(1 for x in th if x == min(th)), len(th), min(th))
    t = threading.Thread(target=run); t.start(); return t
# SYSCALLS=1: the server's system calls and context switches per response (perf stat, every
# process of its group), "sys_enter" being all of them.
STAT_EVENTS = ["raw_syscalls:sys_enter", "syscalls:sys_enter_sendfile64", "syscalls:sys_enter_epoll_wait",
               "syscalls:sys_enter_epoll_ctl", "syscalls:sys_enter_setsockopt", "context-switches"]
print("load", open("/proc/loadavg").read().strip(), f"{fname} c{conns} close={close} secs={secs}")
for r in range(rounds):
    for label, kind, binary in (servers if r % 2 == 0 else servers[::-1]):
        # nginx's spec: listen parameters, commas for spaces; herdd's: the binary's path as given.
        port = free_port(); p = sb.start(kind, binary.replace(",", " ") if kind == "nginx" and binary else binary, root, port, tmp)
        try:
            sb.load(client, sink_binary, port, fname, conns, 1, close)
            pids = process_group_pids(p.pid)
            s0 = {x: sched(x) for x in pids}; u0 = {x: ut(x) for x in pids}; n0 = nstat(); ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            perfp = None
            if os.environ.get("PERF"):
                pdata = os.path.join(tmp, f"perf-{label}-{r}.data")
                perfp = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", os.environ.get("FREQ", "5000"), "-g", "-o", pdata, "-p", ",".join(map(str, pids))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.3)
            statp = None
            if os.environ.get("SYSCALLS"):
                statout = os.path.join(tmp, f"stat-{label}-{r}.csv")
                statp = subprocess.Popen(["perf", "stat", "-x,", "-o", statout, "-e", ",".join(STAT_EVENTS), "-p", ",".join(map(str, pids))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.3)
            segs_delta = {}; segs_thread = sample_segments(port, secs, segs_delta) if os.environ.get("SEGS") else None
            run = sb.load(client, sink_binary, port, fname, conns, secs, close)
            if segs_thread: segs_thread.join()
            # Responses served (from 1 MB on, their worth in bytes: staticbench.rate) and per second.
            rps = sb.rate(run, sb.FILES[fname]); n = rps * run.seconds; err = run.err
            for pp in (perfp, statp):
                if pp:
                    import signal as _s; pp.send_signal(_s.SIGINT); pp.wait()
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN); n1 = nstat(); s1 = {x: sched(x) for x in pids}; u1 = {x: ut(x) for x in pids}
        finally:
            sb.stop(p)
        cpu = sum(s1[x] - s0[x] for x in pids) / n / 1e3
        print("   per pid us/req:", {x: round((s1[x] - s0[x]) / n / 1e3, 1) for x in pids}, "master", p.pid)
        us = sum(u1[x][0] - u0[x][0] for x in pids) / tk / n * 1e6; sy = sum(u1[x][1] - u0[x][1] for x in pids) / tk / n * 1e6
        wu = (ru1.ru_utime - ru0.ru_utime) / n * 1e6; ws = (ru1.ru_stime - ru0.ru_stime) / n * 1e6
        segs = (n1["TcpOutSegs"] - n0["TcpOutSegs"]) / n
        odd = {k: n1[k] - n0[k] for k in n1 if k in n0 and n1[k] != n0[k] and any(w in k for w in ("Overflow", "Drop", "Retrans", "Timeout", "Probe", "Abort", "Reset", "RTO", "Loss", "Syn", "ZeroWindow", "Prune", "Collapse", "OFO", "Defer", "Persist"))}
        if os.environ.get("ODD"): print("   ", odd)
        if os.environ.get("SEGS"):
            mb = segs_delta.get("bytes_sent", 0) / 1e6
            if mb > 0:
                print(f"    server sockets: data segment {segs_delta['bytes_sent'] / max(1, segs_delta['data_segs_out']) / 1024:.1f} KiB,"
                      f" {segs_delta['data_segs_out'] / mb:.2f} data segments and {segs_delta['segs_in'] / mb:.2f} segments in per MB"
                      + (" ; client sockets at rcv_ssthresh {2}: {0} of {1}".format(*segs_delta["clients"]) if "clients" in segs_delta else ""))
        if statp:
            counts = {}
            for line in open(statout):
                f = line.split(",")
                if len(f) > 3 and f[0].strip().isdigit(): counts[f[2].split(":")[-1].replace("sys_enter_", "")] = int(f[0]) / n
            print("    per response:", "  ".join(f"{k} {v:.1f}" for k, v in counts.items()))
        res[label].append((rps, cpu, us, sy, wu, ws, segs))
        if perfp:
            out = subprocess.run(["perf", "report", "-i", pdata, "--sort", "dso", "--stdio", "-g", "none"], capture_output=True, text=True).stdout
            import re as _re
            ev = float(_re.search(r"Event count \(approx.\): (\d+)", out).group(1))
            kern = sum(float(m.group(1)) for m in _re.finditer(r"([\d.]+)%\s+\[kernel", out))
            out2 = subprocess.run(["perf", "report", "-i", pdata, "--children", "--sort", "sym", "--stdio", "-g", "none"], capture_output=True, text=True).stdout
            agg = {}
            for m in _re.finditer(r"^\s+([\d.]+)%\s+[\d.]+%\s+\[k\] (\S+)", out2, _re.M):
                sym = m.group(2)
                if sym.startswith("__x64_sys_") or sym.startswith("__sys_") and False or sym in ("net_rx_action", "handle_softirqs", "do_softirq", "__local_bh_enable_ip", "release_sock", "tcp_sendmsg_locked", "tcp_write_xmit", "tcp_v4_rcv", "__tcp_transmit_skb", "tcp_close", "__tcp_close", "inet_csk_destroy_sock", "tcp_ack", "sock_def_readable", "asm_sysvec_apic_timer_interrupt", "finish_task_switch.isra.0", "schedule", "do_splice_direct", "splice_to_socket", "inet_accept", "tcp_rcv_established", "tcp_rcv_state_process", "tcp_v4_do_rcv", "__release_sock"):
                    agg[sym] = ev * float(m.group(1)) / 100 / n / 1e3
            print("   " + "  ".join(f"{k.replace('__x64_sys_','')}={v:.1f}" for k, v in sorted(agg.items(), key=lambda kv: -kv[1])))
            print(f"   perf: kernel {ev*kern/100/n/1e3:6.1f} us/req  user {ev*(100-kern)/100/n/1e3:6.1f} us/req")
        print(f"r{r+1} {label:6} {rps:8.1f} req/s  cpu {cpu:6.1f} us/req (u {us:5.1f} s {sy:6.1f})  client u {wu:5.1f} s {ws:6.1f}  segs {segs:5.1f} {err or ''}", flush=True)
print("load", open("/proc/loadavg").read().strip())
import shutil
shutil.rmtree(tmp, ignore_errors=True)
names = ["req/s", "cpu", "user", "sys", "client u", "client s", "segs", "total"]
for label in res: res[label] = [x + (x[1] + x[4] + x[5],) for x in res[label]]
for label in res:
    med = [statistics.median(x[i] for x in res[label]) for i in range(8)]
    print(f"MED {label:6} " + "  ".join(f"{n} {v:.1f}" for n, v in zip(names, med)))
# Paired against the first server (the two back to back in each round): req/s with its interval
# and the rounds ahead (staticbench.paired_summary), CPU per request.
ref = servers[0][0]
for label in list(res)[1:]:
    rps = sb.paired_summary(sb.round_ratios(res, label, ref, 0))
    cpu = sb.paired_summary(sb.round_ratios(res, label, ref, 1))
    print(f"PAIRED {label}/{ref}  req/s {rps}  cpu "
          + (f"{cpu.median:.2f} ({cpu.low:.2f}-{cpu.high:.2f})" if cpu else "none"))
