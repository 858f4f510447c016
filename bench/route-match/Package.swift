// swift-tools-version:6.0
// Route matching cost for 50 routes: herdd's Router trie against vapor/routing-kit's TrieRouter
// (4.9.3, from the local mirror), in one process, alternating. Not a test; see README.md.
import PackageDescription

let package = Package(
    name: "route-match",
    dependencies: [
        .package(name: "herdd", path: "../.."),
        .package(url: "https://github.com/vapor/routing-kit", exact: "4.9.3"),
    ],
    targets: [
        .executableTarget(name: "RouteMatch", dependencies: [
            .product(name: "Herd", package: "herdd"),
            .product(name: "RoutingKit", package: "routing-kit"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
