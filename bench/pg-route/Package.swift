// swift-tools-version:6.0
// The Hummingbird 2 peer of the postgres route bench (bench/pg-route/run): Hummingbird's own
// server with one postgres-nio pool and the same primary-key read as Examples/todos-pg's
// GET /todos/:id. Release build, its own .build; never built by ./test.sh.
import PackageDescription

let package = Package(
    name: "pg-route-peer",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
        .package(url: "https://github.com/vapor/postgres-nio", exact: "1.33.2"),
    ],
    targets: [
        .executableTarget(name: "PGPeer", dependencies: [
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
