// swift-tools-version:6.0
// The same JSON API on herdd and on Hummingbird 2 (bench/app/run): notes-api's NoteStore
// (GRDB, WAL, short-back-off busy handler) behind both, plus a CPU-only JSON route.
import PackageDescription

let package = Package(
    name: "app-bench",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "notes-api", path: "../../Examples/notes-api"),
        .package(name: "herdd", path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
    ],
    targets: [
        .executableTarget(name: "herd-notes", dependencies: [
            .product(name: "NotesAPI", package: "notes-api"),
            .product(name: "Herd", package: "herdd"),
        ]),
        .executableTarget(name: "hb-notes", dependencies: [
            .product(name: "NotesAPI", package: "notes-api"),
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
