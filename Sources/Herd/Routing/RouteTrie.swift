import HerdHTTP

/// The route table: a trie of path segments, built once when the router becomes a handler and
/// read-only afterwards (so it is shared by every request of a worker without locks).
///
/// Lookup order at each segment: constants, then `:parameters` (in registration order), then
/// `*`, then `**`; it backtracks, so `/a/:id` and `/a/new/x` coexist. The first route whose
/// path matches *and* has the method wins; when paths match but none has the method the
/// answer is 405 with the methods of the first path that matched (README: "Routing").
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
        var constants: [(text: String, node: Node)] = []
        var parameters: [(name: String, node: Node)] = []
        var anything: Node?
        var catchAll: Endpoints?
        var endpoints: Endpoints?
    }

    /// What a lookup found.
    enum Match {
        case found(Route, Parameters)
        /// The path is known, the method is not: the `Allow` value.
        case methodNotAllowed(allow: String)
        case notFound
    }

    private let root = Node()
    /// Whether any route may block (the handler's `mayBlock`).
    let anyRouteMayBlock: Bool
    let count: Int

    init(_ routes: [Route]) {
        for route in routes { RouteTrie.insert(route, into: root) }
        anyRouteMayBlock = routes.contains { $0.mayBlock }
        count = routes.count
    }

    private static func insert(_ route: Route, into root: Node) {
        var node = root
        for (i, segment) in route.path.enumerated() {
            switch segment {
            case .constant(let text):
                if let existing = node.constants.first(where: { $0.text == text }) { node = existing.node; continue }
                let child = Node()
                node.constants.append((text, child))
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
        let segments = path.split(separator: "/")
        var search = Search(path: path, segments: segments, method: method)
        if let route = search.visit(root, 0) { return .found(route, search.parameters) }
        if let allow = search.firstPathMatch?.allow { return .methodNotAllowed(allow: allow) }
        return .notFound
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
            for c in node.constants where c.text.utf8.elementsEqual(segment.utf8) {
                if let route = visit(c.node, i + 1) { return route }
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
