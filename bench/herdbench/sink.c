/* sink: an HTTP/1.1 GET load client that throws the response bodies away inside the kernel, so
 * that the server, not the client, bounds a large-file run. Keep-alive, or one request per
 * connection with `Connection: close` (the last argument `close`).
 *
 * wrk reads every byte into user space: on a 20 MB file with 64 connections its copy takes ~90 %
 * of a 2-CPU host and both servers it measures look alike (docs/static.md). Here the body is read
 * with recv(MSG_TRUNC): on TCP that advances the socket's read sequence (window updates and ACKs
 * as usual) without copying the bytes out. The head is read normally and checked (status 200,
 * Content-Length).
 *
 *   sink PORT PATH CONNECTIONS SECONDS [close]
 *
 * With `close`, each connection sends one request with `Connection: close`, reads the response
 * (the head must then say `Connection: close` too) and is replaced by a new one, as wrk -H
 * 'Connection: close' does.
 *
 * prints one line: sink-summary bytes=B requests=N duration_us=D errors=E
 * bytes counts every byte received (heads and partial bodies included), as wrk_summary.lua does.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { HEAD, BODY };

struct conn {
    int fd;
    int state;
    size_t headlen;
    long long body_left;
    char head[8192];
};

static struct sockaddr_in addr;
static char request[512];
static size_t request_len;
static int epfd;
static long long bytes, requests, errors;
static int close_mode;

static long long now_us(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) { perror("clock_gettime"); exit(1); }
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *call) { perror(call); exit(1); }

/* Connects (blocking: loopback answers at once), then goes non-blocking and sends a request. */
static void open_conn(struct conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket");
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
    int one = 1;
    if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) die("setsockopt(TCP_NODELAY)");
    if (fcntl(c->fd, F_SETFL, O_NONBLOCK) != 0) die("fcntl(O_NONBLOCK)");
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) die("epoll_ctl(ADD)");
    c->state = HEAD;
    c->headlen = 0;
    if (send(c->fd, request, request_len, MSG_NOSIGNAL) != (ssize_t)request_len) die("send");
}

/* A broken exchange: counted, and the connection replaced. */
static void fail(struct conn *c, const char *why) {
    if (errors < 5) fprintf(stderr, "sink: %s\n", why);
    errors++;
    if (close(c->fd) != 0) die("close");
    open_conn(c);
}

/* Parses a complete head in c->head[0..end): 200 and a Content-Length (in close mode also
 * `Connection: close`), or -1. */
static long long content_length(struct conn *c, size_t end) {
    if (end < 12 || memcmp(c->head, "HTTP/1.1 200", 12) != 0) return -1;
    c->head[end - 1] = 0;
    long long length = -1;
    int closes = 0;
    for (char *line = strstr(c->head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        if (strncasecmp(line + 2, "content-length:", 15) == 0) length = atoll(line + 17);
        if (strncasecmp(line + 2, "connection: close", 17) == 0) closes = 1;
    }
    return (close_mode && !closes) ? -1 : length;
}

static void done(struct conn *c) {
    requests++;
    if (close_mode) {
        /* The whole response is in: the server closes its side; a new connection replaces it. */
        if (close(c->fd) != 0) die("close");
        open_conn(c);
        return;
    }
    c->state = HEAD;
    c->headlen = 0;
    if (send(c->fd, request, request_len, MSG_NOSIGNAL) != (ssize_t)request_len) fail(c, "send failed");
}

/* Reads what the socket has: the head into c->head, the body discarded by MSG_TRUNC. */
static void readable(struct conn *c) {
    for (;;) {
        ssize_t n;
        if (c->state == HEAD) {
            n = recv(c->fd, c->head + c->headlen, sizeof c->head - 1 - c->headlen, 0);
        } else {
            /* MSG_TRUNC on TCP: the bytes are consumed, not copied; no buffer is touched. */
            size_t want = c->body_left > (1 << 30) ? (1 << 30) : (size_t)c->body_left;
            n = recv(c->fd, NULL, want, MSG_TRUNC);
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR) continue;
            fail(c, strerror(errno));
            return;
        }
        if (n == 0) { fail(c, "connection closed by the server"); return; }
        bytes += n;
        if (c->state == HEAD) {
            c->headlen += (size_t)n;
            c->head[c->headlen] = 0;
            char *end = strstr(c->head, "\r\n\r\n");
            if (!end) {
                if (c->headlen >= sizeof c->head - 1) { fail(c, "head too long"); return; }
                continue;
            }
            size_t headend = (size_t)(end - c->head) + 4;
            long long length = content_length(c, headend);
            if (length < 0) {
                fail(c, close_mode ? "not a 200 with a Content-Length and Connection: close" : "not a 200 with a Content-Length");
                return;
            }
            long long body_in = (long long)(c->headlen - headend);
            if (body_in > length) { fail(c, "more bytes than the Content-Length"); return; }
            c->body_left = length - body_in;
            c->state = BODY;
        } else {
            c->body_left -= n;
        }
        if (c->state == BODY && c->body_left == 0) { done(c); if (close_mode) return; }
    }
}

int main(int argc, char **argv) {
    if (argc != 5 && !(argc == 6 && strcmp(argv[5], "close") == 0)) {
        fprintf(stderr, "usage: sink PORT PATH CONNECTIONS SECONDS [close]\n");
        return 2;
    }
    close_mode = argc == 6;
    int port = atoi(argv[1]), conns = atoi(argv[3]);
    double secs = atof(argv[4]);
    if (port <= 0 || port > 65535 || conns <= 0 || conns > 10000 || secs <= 0) {
        fprintf(stderr, "sink: bad port, connection count or duration\n");
        return 2;
    }
    int len = snprintf(request, sizeof request, "GET /%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n", argv[2], port,
                       close_mode ? "Connection: close\r\n" : "");
    if (len < 0 || (size_t)len >= sizeof request) { fprintf(stderr, "sink: path too long\n"); return 2; }
    request_len = (size_t)len;
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    struct conn *all = calloc((size_t)conns, sizeof *all);
    if (!all) die("calloc");
    long long start = now_us(), end = start + (long long)(secs * 1e6);
    for (int i = 0; i < conns; i++) open_conn(&all[i]);
    struct epoll_event evs[256];
    long long t;
    while ((t = now_us()) < end) {
        int n = epoll_wait(epfd, evs, 256, (int)((end - t) / 1000) + 1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) readable(evs[i].data.ptr);
    }
    printf("sink-summary bytes=%lld requests=%lld duration_us=%lld errors=%lld\n",
           bytes, requests, now_us() - start, errors);
    return 0;
}
