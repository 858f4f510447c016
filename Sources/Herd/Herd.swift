// The module a program imports to become a herdd server: the entry point (HerdServer, from
// HerdD) and the handler API (Handler, HTTPRequest, HTTPResponse, BodyStream, HandlerContext,
// HandlerRegistry, from Handlers), re-exported so that `import Herd` is all it takes.
@_exported import Handlers
@_exported import HerdD
