// A program on the Herd library whose name and threads per worker come from the environment
// (HERD_PROBE_NAME, HERD_PROBE_THREADS), so that a test can give `HerdServer.main` what it must
// refuse: Tests/integration/test_cli.py runs it and checks the exit code (70) and the message.
// With valid values it is an ordinary Herd program (`--version` prints "NAME 0.0.1").
import Glibc
import Herd

func setting(_ key: String) -> String? { getenv(key).map { String(cString: $0) } }

HerdServer.main(
    name: setting("HERD_PROBE_NAME") ?? "herd-probe", version: "0.0.1",
    threadsPerWorker: setting("HERD_PROBE_THREADS").flatMap { Int($0) } ?? 1,
    router: { _ in Router() })
