// swift-tools-version:6.0
// An own server on herdd with async routes over real async libraries: PostgreSQL through
// vapor/postgres-nio (one connection pool per worker) and an upstream through
// swift-server/async-http-client. The herdd dependency is this repository, by path.
import PackageDescription

let package = Package(
    name: "todos-pg",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "herdd", path: "../.."),
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
        .package(url: "https://github.com/swift-server/async-http-client", exact: "1.37.0"),
        // NIOPosix directly: the worker's event loop is made the global executor (TodosServices).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
    ],
    targets: [
        .target(name: "TodosPG", dependencies: [
            .product(name: "Herd", package: "herdd"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .executableTarget(name: "todos-pg", dependencies: [
            "TodosPG",
            .product(name: "Herd", package: "herdd"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
