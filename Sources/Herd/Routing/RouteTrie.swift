import HerdHTTP

/// The route table: a trie of path segments, built once when the router becomes a handler and
/// read-only afterwards (so it is shared by every request of a worker without locks).
///
/// Lookup order at each segment: constants, then `:parameters` (in registration order), then
/// `*`, then `**`; it backtracks, so `/a/:id` and `/a/new/x` coexist. The first route whose
/// path matches *and* has the method wins; when paths match but none has the method the
/// answer is 405 with the methods of the first path that matched (docs/routing.md).
final class RouteTrie: @unchecked Sendable {  // immutable after init; see above
    /// The routes of one path, by method, and the value of their `Allow` field.
    struct Endpoints {
        var routes: [Route] = []
        var allow = ""

        /// The route for `method`; HEAD falls back to GET (the server drops the body).
        func route(for method: HTTPMethod) -> Route? {
            for r in routes where r.method == method { return r }
            if method == .head { for r in routes where r.method == .get { return r } }
            return nil
        }
    }

    final class Node {
        /// By text: one hash per segment instead of a compare per sibling (50 routes of 10
        /// resources: 10 siblings at the root; bench/route-match).
        /// Keyed by Substring so that a path segment is looked up without making a String.
        var constants: [Substring: Node] = [:]
        var parameters: [(name: String, node: Node)] = []
        var anything: Node?
        var catchAll: Endpoints?
        var endpoints: Endpoints?
    }

    /// What a lookup found.
    enum Match: Sendable {
        case found(Route, Parameters)
        /// The path is known, the method is not: the `Allow` value.
        case methodNotAllowed(allow: String)
        case notFound
    }

    private let root = Node()
    /// Whether any route may block (the handler's `mayBlock`).
    let anyRouteMayBlock: Bool
    /// Whether any route streams its request body (RouterHandler.streamsBody(of:)).
    let anyRouteStreamsBody: Bool
    let count: Int

    init(_ routes: [Route]) {
        for route in routes { RouteTrie.insert(route, into: root) }
        anyRouteMayBlock = routes.contains { $0.mayBlock }
        anyRouteStreamsBody = routes.contains { $0.streamsBody }
        count = routes.count
    }

    private static func insert(_ route: Route, into root: Node) {
        var node = root
        for (i, segment) in route.path.enumerated() {
            switch segment {
            case .constant(let text):
                if let existing = node.constants[Substring(text)] { node = existing; continue }
                let child = Node()
                node.constants[Substring(text)] = child
                node = child
            case .parameter(let name):
                if let existing = node.parameters.first(where: { $0.name == name }) { node = existing.node; continue }
                let child = Node()
                node.parameters.append((name, child))
                node = child
            case .anything:
                if node.anything == nil { node.anything = Node() }
                node = node.anything ?? Node()
            case .catchAll:
                precondition(i == route.path.count - 1, "'**' must be the last segment of a route: \(PathSegment.format(route.path))")
                node.catchAll = adding(route, to: node.catchAll)
                return
            }
        }
        node.endpoints = adding(route, to: node.endpoints)
    }

    /// `endpoints` with `route` added (replacing a route of the same method: last one wins).
    private static func adding(_ route: Route, to endpoints: Endpoints?) -> Endpoints {
        var e = endpoints ?? Endpoints()
        e.routes.removeAll { $0.method == route.method }
        e.routes.append(route)
        var methods = e.routes.map(\.method.rawValue)
        if methods.contains("GET") && !methods.contains("HEAD") { methods.append("HEAD") }
        e.allow = methods.sorted().joined(separator: ", ")
        return e
    }

    /// Finds the route for `method` on `path` (percent-decoded, without the query).
    func match(path: String, method: HTTPMethod) -> Match {
        let segments = Self.segments(of: path)
        var search = Search(path: path, segments: segments, method: method)
        if let route = search.visit(root, 0) { return .found(route, search.parameters) }
        if let allow = search.firstPathMatch?.allow { return .methodNotAllowed(allow: allow) }
        return .notFound
    }

    /// The non-empty segments between '/'s, split on the UTF-8 bytes ('/' is ASCII, so every
    /// boundary is a character boundary): Character-wise splitting was the largest cost of a
    /// match (bench/route-match).
    static func segments(of path: String) -> [Substring] {
        var out: [Substring] = []
        let utf8 = path.utf8
        var start = utf8.startIndex
        var i = start
        while i != utf8.endIndex {
            if utf8[i] == UInt8(ascii: "/") {
                if start != i { out.append(path[start..<i]) }
                start = utf8.index(after: i)
            }
            i = utf8.index(after: i)
        }
        if start != i { out.append(path[start..<i]) }
        return out
    }

    /// One lookup's state: the segments, the captured parameters so far, and the first
    /// endpoints whose path matched (for 405).
    private struct Search {
        let path: String
        let segments: [Substring]
        let method: HTTPMethod
        var parameters = Parameters()
        var firstPathMatch: Endpoints?

        init(path: String, segments: [Substring], method: HTTPMethod) {
            self.path = path
            self.segments = segments
            self.method = method
        }

        mutating func visit(_ node: Node, _ i: Int) -> Route? {
            if i == segments.count {
                if let e = node.endpoints, let route = accept(e) { return route }
                if let e = node.catchAll, let route = accept(e) { parameters.tail = ""; return route }
                return nil
            }
            let segment = segments[i]
            if !node.constants.isEmpty, let child = node.constants[segment], let route = visit(child, i + 1) {
                return route
            }
            for p in node.parameters {
                parameters.append(p.name, segment)
                if let route = visit(p.node, i + 1) { return route }
                parameters.values.removeLast()
            }
            if let any = node.anything, let route = visit(any, i + 1) { return route }
            if let e = node.catchAll, let route = accept(e) {
                parameters.tail = path[segment.startIndex...]
                return route
            }
            return nil
        }

        /// The route for the method, noting the path match for 405 when there is none.
        private mutating func accept(_ e: Endpoints) -> Route? {
            if let route = e.route(for: method) { return route }
            if firstPathMatch == nil { firstPathMatch = e }
            return nil
        }
    }
}
