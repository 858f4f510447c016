// Throwaway: cost per request of a swift-http-types handler API (HelloHandler of this copy)
// against herdd's hello (a prebuilt response), in one process, release build.
import Glibc
import Handlers

struct Baseline: Handler {
    static let response = HTTPResponse.text(200, "hello\n")
    func handle(_ request: HTTPRequest, context: HandlerContext) -> HTTPResponse { Baseline.response }
}

func now() -> Double { var ts = timespec(); clock_gettime(CLOCK_MONOTONIC, &ts); return Double(ts.tv_sec) * 1e9 + Double(ts.tv_nsec) }

let ctx = HandlerContext(listenerName: "http", workerID: 0, pid: 1, peer: "127.0.0.1:1")
// What wrk sends (Host only) and what curl sends (Host, User-Agent, Accept).
let requests = [
    HTTPRequest(method: "GET", target: "/", headers: ["Host": "127.0.0.1:8080"]),
    HTTPRequest(method: "GET", target: "/", headers: ["Host": "127.0.0.1:8080", "User-Agent": "curl/7.88.1", "Accept": "*/*"]),
]
let n = 2_000_000
for (label, req) in zip(["wrk (1 field)", "curl (3 fields)"], requests) {
    var results: [String: [Double]] = [:]
    for round in 0..<5 {
        for (name, h) in [("herdd", Baseline() as any Handler), ("http-types", HelloHandler() as any Handler)].shuffled() {
            var sink = 0
            let t0 = now()
            for _ in 0..<n { sink &+= h.handle(req, context: ctx).status }
            let dt = (now() - t0) / Double(n)
            if sink == 0 { print("never") }
            if round > 0 { results[name, default: []].append(dt) }
        }
    }
    for (name, v) in results.sorted(by: { $0.key < $1.key }) {
        let s = v.sorted()
        print("\(label) \(name): median \(s[s.count / 2]) ns per request, min \(s[0])")
    }
}
