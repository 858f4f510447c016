// herdd: the server with its built-in handlers (hello, health, debug, static, metrics).
// Everything is in the Herd library; a program of your own does the same with its handlers.
import Herd

#if DEBUG
RouterDemo.register()  // test-only handler `router-demo` (RouterDemo.swift)
#endif
HerdServer.main()
