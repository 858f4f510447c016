// C view of the Linux and libsystemd APIs that Swift's Glibc module does not export.
// Do NOT define _GNU_SOURCE here: it breaks SwiftGlibc (fd_set redefinition); declare the few
// GNU-only prototypes we need explicitly instead.
#ifndef HERDD_SHIM_H
#define HERDD_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/netlink.h>
#include <linux/sockios.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

// GNU extensions, declared by hand (see above).
int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags);
int memfd_create(const char *name, unsigned int flags);
int pipe2(int pipefd[2], int flags);
// glibc's names of the program (errno.h declares them only under _GNU_SOURCE): they point into
// argv[0]'s memory, and syslog(3) (libdispatch's messages) uses the short one as identifier.
extern char *program_invocation_name;
extern char *program_invocation_short_name;
// Read and set in C: Swift 6 refuses a global mutable C variable outside an unsafe context.
static inline const char *herd_program_name(void) { return program_invocation_name; }
static inline void herd_set_program_names(char *name, char *short_name) {
    program_invocation_name = name;
    program_invocation_short_name = short_name;
}
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif

// pidfd_open(2) (Linux 5.3): glibc 2.36 has no wrapper, and syscall(2) is variadic (Swift
// cannot call it). The fd becomes readable when the process exits.
static inline int herd_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }
// openat2(2) below `dirfd` only (RESOLVE_BENEATH: no "..", absolute path or symlink leaves it,
// EXDEV otherwise; RESOLVE_NO_MAGICLINKS: no /proc/PID/fd-style links). glibc 2.36 has no
// wrapper and syscall(2) is variadic, which Swift cannot call.
static inline int herd_openat2_beneath(int dirfd, const char *path, int flags) {
    struct open_how how = { .flags = (uint64_t)(unsigned)flags, .mode = 0,
                            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}
// poll(2) for input on one fd (a pidfd): 1 readable, 0 timeout, -1 error.
static inline int herd_poll_input(int fd, int timeout_ms) {
    struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
    return poll(&p, 1, timeout_ms);
}

// Flag values Swift cannot import as macros of macros.
static inline int herd_sock_nonblock(void) { return SOCK_NONBLOCK; }
static inline int herd_sock_cloexec(void) { return SOCK_CLOEXEC; }
static inline int herd_sock_stream(void) { return SOCK_STREAM; }
static inline uint32_t herd_epollin(void) { return EPOLLIN; }
static inline uint32_t herd_epollout(void) { return EPOLLOUT; }
static inline uint32_t herd_epollet(void) { return EPOLLET; }
static inline uint32_t herd_epollrdhup(void) { return EPOLLRDHUP; }
static inline uint32_t herd_epollhup(void) { return EPOLLHUP; }
static inline uint32_t herd_epollerr(void) { return EPOLLERR; }
static inline uint32_t herd_epollexclusive(void) { return EPOLLEXCLUSIVE; }

// prctl is variadic: Swift cannot call it directly.
static inline int herd_prctl_pdeathsig(int sig) { return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0); }
static inline int herd_prctl_set_name(const char *name) { return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }

// Relaxed/acquire/release atomics on words of the shared-memory scoreboard. Each worker writes only
// its own slot; the master only reads. Plain loads and stores could tear or be reordered by the
// compiler, __atomic builtins cannot.
static inline uint64_t herd_load64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void herd_store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

// epoll_event is packed on x86_64; fill and read it in C so Swift never sees the packing.
static inline int herd_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}
typedef struct { uint32_t events; uint64_t data; } herd_event;
static inline int herd_epoll_wait(int epfd, herd_event *out, int max, int timeout_ms) {
    struct epoll_event evs[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) { out[i].events = evs[i].events; out[i].data = evs[i].data.u64; }
    return n;
}

// sigset helpers (sigemptyset etc. may be macros).
static inline void herd_sigset_empty(sigset_t *s) { sigemptyset(s); }
static inline void herd_sigset_add(sigset_t *s, int sig) { sigaddset(s, sig); }

// Accept queue of a listening TCP socket: on Linux, for a socket in LISTEN state, tcpi_unacked is
// the number of connections waiting in the accept queue and tcpi_sacked the backlog limit.
static inline int herd_tcp_backlog(int fd, uint32_t *queued, uint32_t *limit) {
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0) return -1;
    *queued = ti.tcpi_unacked;
    *limit = ti.tcpi_sacked;
    return 0;
}

// A classic BPF program that drops every packet, attached to a listening TCP socket at the
// start of a graceful stop (Master/Stop.swift). The kernel runs a listener's filter on each SYN
// and on the ACK that completes a handshake, so no new connection can join the accept queue,
// while the connections already queued stay there for the workers to take. (shutdown(SHUT_RD)
// would reset those.) Clients whose SYN is dropped retry, and meet the close that follows.
static inline int herd_attach_drop_all_filter(int fd) {
    struct sock_filter code[1] = { { 0x06 /* BPF_RET | BPF_K */, 0, 0, 0 /* accept 0 bytes: drop */ } };
    struct sock_fprog prog = { 1, code };
    return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);
}

// How long an accepted TCP connection has waited (ms): tcpi_last_data_recv is the time since
// the last data arrived, or since the handshake if none did yet (the child socket's receive
// time is set when it is created), i.e. the wait in the accept queue. -1: not TCP, or error.
static inline int64_t herd_tcp_last_data_recv_ms(int fd) {
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0) return -1;
    return (int64_t)ti.tcpi_last_data_recv;
}

// Accept queue of a listening unix stream socket, which TCP_INFO cannot report: ask the kernel
// with sock_diag (NETLINK_SOCK_DIAG, UNIX_DIAG_RQLEN) for the socket with our inode. For a
// listener, udiag_rqueue is the number of connections waiting and udiag_wqueue the backlog limit.
// Returns 0 on success, -errno on failure. nlfd: a NETLINK_SOCK_DIAG socket (kept open by the
// caller, so sampling costs one sendto + one recv).
static inline int herd_unix_backlog(int nlfd, int fd, uint32_t *queued, uint32_t *limit) {
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    struct {
        struct nlmsghdr nlh;
        struct unix_diag_req req;
    } msg;
    memset(&msg, 0, sizeof msg);
    msg.nlh.nlmsg_len = sizeof msg;
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST;
    msg.req.sdiag_family = AF_UNIX;
    msg.req.udiag_states = 1U << 10; /* TCP_LISTEN */
    msg.req.udiag_ino = (uint32_t)st.st_ino;
    msg.req.udiag_show = UDIAG_SHOW_RQLEN;
    msg.req.udiag_cookie[0] = (uint32_t)-1; /* INET_DIAG_NOCOOKIE: match by inode only */
    msg.req.udiag_cookie[1] = (uint32_t)-1;
    struct sockaddr_nl nladdr;
    memset(&nladdr, 0, sizeof nladdr);
    nladdr.nl_family = AF_NETLINK;
    if (sendto(nlfd, &msg, sizeof msg, 0, (struct sockaddr *)&nladdr, sizeof nladdr) < 0) return -errno;
    union { struct nlmsghdr h; char raw[8192]; } buf;
    ssize_t n = recv(nlfd, &buf, sizeof buf, 0);
    if (n < 0) return -errno;
    for (struct nlmsghdr *h = &buf.h; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type == NLMSG_ERROR) {
            struct nlmsgerr *err = (struct nlmsgerr *)NLMSG_DATA(h);
            return err->error ? err->error : -ENOENT;
        }
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
        struct unix_diag_msg *m = (struct unix_diag_msg *)NLMSG_DATA(h);
        int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
        for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
            if (a->rta_type == UNIX_DIAG_RQLEN && RTA_PAYLOAD(a) >= sizeof(struct unix_diag_rqlen)) {
                struct unix_diag_rqlen *q = (struct unix_diag_rqlen *)RTA_DATA(a);
                *queued = q->udiag_rqueue;
                *limit = q->udiag_wqueue;
                return 0;
            }
        }
    }
    return -ENOENT;
}

static inline int herd_sock_diag_socket(void) {
    return socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
}

// sd_notify without blocking, for the frequent, droppable messages (STATUS=, WATCHDOG=1): if the
// service manager stops reading and the notify socket's queue fills up, sd_notify would block
// the master's loop (and with it supervision and the metrics endpoint). Supports a path or an
// abstract ("@...") NOTIFY_SOCKET. Returns 1 sent, 0 no NOTIFY_SOCKET, -errno on failure.
static inline int herd_notify_nonblocking(const char *text) {
    const char *e = getenv("NOTIFY_SOCKET");
    if (!e || !*e) return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(e);
    if (n >= sizeof sa.sun_path || (e[0] != '/' && e[0] != '@')) return -EINVAL;
    memcpy(sa.sun_path, e, n);
    if (e[0] == '@') sa.sun_path[0] = 0;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    ssize_t r = sendto(fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    int err = errno;
    close(fd);
    return r < 0 ? -err : 1;
}

// Work-conserving dispatch (Worker/Dispatch.swift): a connection fd travels between workers over
// a SOCK_SEQPACKET socketpair with SCM_RIGHTS; CMSG_* are macros Swift cannot use, so the
// message is built and read here. One datagram = one fd + a fixed payload. Non-blocking
// (MSG_DONTWAIT): on a full queue the sender keeps its connection. MSG_NOSIGNAL: no SIGPIPE.
// Returns 0, or -errno.
typedef struct { uint64_t listener; uint64_t readyAt; } herd_dispatch_payload;
static inline int herd_send_fd(int sock, int fd, const herd_dispatch_payload *p) {
    union { struct cmsghdr h; char raw[CMSG_SPACE(sizeof(int))]; } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = { .iov_base = (void *)p, .iov_len = sizeof *p };
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl.raw;
    m.msg_controllen = sizeof ctl.raw;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
    for (;;) {
        ssize_t n = sendmsg(sock, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0) return 0;
        if (errno != EINTR) return -errno;
    }
}
// Receives one datagram: *fd_out = the fd (CLOEXEC) or -1 if the datagram carried none.
// Returns 1 received, 0 queue empty (EAGAIN), -errno on error. A datagram whose fds did not fit
// (MSG_CTRUNC) has them closed by the kernel; it is reported with *fd_out = -1.
// A msghdr to receive one dispatch payload into `p` (zeroed), without a control buffer.
static inline void herd_dispatch_msghdr(struct msghdr *m, struct iovec *iov, herd_dispatch_payload *p) {
    memset(p, 0, sizeof *p);
    iov->iov_base = p;
    iov->iov_len = sizeof *p;
    memset(m, 0, sizeof *m);
    m->msg_iov = iov;
    m->msg_iovlen = 1;
}
static inline int herd_recv_fd(int sock, int *fd_out, herd_dispatch_payload *p) {
    union { struct cmsghdr h; char raw[CMSG_SPACE(sizeof(int))]; } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov;
    struct msghdr m;
    herd_dispatch_msghdr(&m, &iov, p);
    m.msg_control = ctl.raw;
    m.msg_controllen = sizeof ctl.raw;
    *fd_out = -1;
    for (;;) {
        ssize_t n = recvmsg(sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
        break;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            memcpy(fd_out, CMSG_DATA(c), sizeof(int));
        }
    }
    return 1;
}
// Bytes a unix socket has sent that its peer has not read yet (SIOCOUTQ: the truesize of the
// queued datagrams, shared by every process holding the socket). >= 0, or -errno.
static inline int herd_unix_outq(int fd) {
    int n = 0;
    if (ioctl(fd, SIOCOUTQ, &n) < 0) return -errno;
    return n;
}
// The payload of the datagram at the head of the queue, without taking it (MSG_PEEK) and
// without its fd: with no control buffer the kernel installs no fd on a peek (it drops its
// duplicates and sets MSG_CTRUNC). 1 peeked, 0 queue empty (EAGAIN), -errno on error.
static inline int herd_peek_dispatch(int sock, herd_dispatch_payload *p) {
    struct iovec iov;
    struct msghdr m;
    herd_dispatch_msghdr(&m, &iov, p);
    for (;;) {
        ssize_t n = recvmsg(sock, &m, MSG_DONTWAIT | MSG_PEEK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
        return n == (ssize_t)sizeof *p ? 1 : -EBADMSG;
    }
}
// Bytes waiting on a connected socket, without consuming them: 1 data, 0 none (EAGAIN),
// -1 EOF or error (the owner's event loop deals with those).
static inline int herd_has_input(int fd) {
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return 1;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return -1;
}
static inline int herd_sock_seqpacket(void) { return SOCK_SEQPACKET; }
// Whether a datagram is queued on a SOCK_SEQPACKET/DGRAM socket, without taking it: SIOCINQ
// (FIONREAD) gives the length of the next datagram there (0 when the queue is empty). 1 queued,
// 0 empty, -errno on failure.
static inline int herd_datagram_queued(int fd) {
    int n = 0;
    if (ioctl(fd, SIOCINQ, &n) < 0) return -errno;
    return n > 0 ? 1 : 0;
}

#endif
