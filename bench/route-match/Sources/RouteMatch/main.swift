// 50 routes of a plausible JSON API (10 resources x list/create/get/update/delete, with :id
// parameters), matched for a mix of request paths. Prints the median ns per match of 5 rounds
// (the first discarded), each round 1 M matches per router, routers alternating.
import Glibc
import Herd
import RoutingKit

let resources = ["users", "notes", "todos", "posts", "comments", "tags", "files", "orders", "items", "teams"]
let herd = Router()
nonisolated(unsafe) let kit = TrieRouter<String>()
for r in resources {
    for (method, path) in [("GET", r), ("POST", r), ("GET", "\(r)/:id"), ("PUT", "\(r)/:id"), ("DELETE", "\(r)/:id")] {
        herd.addRoute(path, method: HTTPMethod(rawValue: method), responder: { _, _ in HTTPResponse() })
        let components = [PathComponent.constant(method)] + path.split(separator: "/").map { PathComponent(stringLiteral: String($0)) }
        kit.register("\(method) \(path)", at: components)
    }
}
let handler = herd.handler()
// The same routes plus one async route: the router's respond(to:context:) matches once and
// answers sync routes in the call (RouterHandler+Async.swift).
let mixed = Router()
for route in herd.routeDescriptions {
    let parts = route.split(separator: " ")
    mixed.addRoute(String(parts[1].dropFirst()), method: HTTPMethod(rawValue: String(parts[0])), responder: { _, _ in HTTPResponse() })
}
mixed.get("slow/:ms") { _, _ async in "slept" }
let mixedHandler = mixed.handler()
let requests: [(String, String)] = [
    ("GET", "/notes/123"), ("GET", "/users"), ("POST", "/orders"), ("DELETE", "/teams/9"),
    ("GET", "/items/42"), ("PUT", "/comments/7"), ("GET", "/nope/1"), ("GET", "/tags/abc"),
]

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

let n = 1_000_000
nonisolated(unsafe) var sink = 0
func herdRound() -> Double {
    let t0 = now()
    for i in 0..<n {
        let (m, p) = requests[i & 7]
        if handler.matchedRoute(method: HTTPMethod(rawValue: m), path: p) != nil { sink &+= 1 }
    }
    return Double(now() - t0) / Double(n)
}
func kitRound() -> Double {
    let t0 = now()
    for i in 0..<n {
        let (m, p) = requests[i & 7]
        // What a server on RoutingKit does per request: split the path, a Parameters value.
        var parameters = RoutingKit.Parameters()
        let path = [m] + p.split(separator: "/").map(String.init)
        if kit.route(path: path, parameters: &parameters) != nil { sink &+= 1 }
    }
    return Double(now() - t0) / Double(n)
}
func fullRound() -> Double {
    let context = HandlerContext(listenerName: "http", workerID: 0, pid: 1, peer: "127.0.0.1:1")
    let built = requests.map { HTTPRequest(method: $0.0, target: $0.1) }
    let t0 = now()
    for i in 0..<n { sink &+= handler.handle(built[i & 7], context: context).status }
    return Double(now() - t0) / Double(n)
}

/// What the worker does per request: one respond(to:context:) (every path here is a sync route
/// or a 404, answered in the call).
func workerRound(_ handler: RouterHandler) -> Double {
    let context = HandlerContext(listenerName: "http", workerID: 0, pid: 1, peer: "127.0.0.1:1")
    let built = requests.map { HTTPRequest(method: $0.0, target: $0.1) }
    let t0 = now()
    for i in 0..<n {
        if case .response(let response) = handler.respond(to: built[i & 7], context: context) { sink &+= response.status }
    }
    return Double(now() - t0) / Double(n)
}

var herdNs: [Double] = [], kitNs: [Double] = [], fullNs: [Double] = [], syncOnlyNs: [Double] = [], mixedNs: [Double] = []
for round in 0..<6 {
    let a = round % 2 == 0 ? herdRound() : 0
    let b = kitRound()
    let c = round % 2 == 1 ? herdRound() : a
    let d = fullRound()
    let e = workerRound(handler)
    let f = workerRound(mixedHandler)
    if round > 0 { herdNs.append(c); kitNs.append(b); fullNs.append(d); syncOnlyNs.append(e); mixedNs.append(f) }
}
func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
print("50 routes, 8 request paths (7 match, 1 not found), 1 M lookups per round, median of 5 rounds:")
print(String(format: "  herd Router trie match:           %6.0f ns", median(herdNs)))
print(String(format: "  routing-kit TrieRouter + split:   %6.0f ns", median(kitNs)))
print(String(format: "  herd RouterHandler.handle (full): %6.0f ns  (context, logger, request id, 404/405, middleware none)", median(fullNs)))
print(String(format: "  respond(to:context:), sync-only router:        %6.0f ns", median(syncOnlyNs)))
print(String(format: "  respond(to:context:), router with async route: %6.0f ns  (sync routes, answered in the call)", median(mixedNs)))
print("  (sink \(sink))")
