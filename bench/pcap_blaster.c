/* pcap_blaster: sends the frames of a pcap file on an interface, looping over the capture, as
 * fast as the kernel takes them or paced to a packet rate. A lean replacement for tcpreplay in
 * bench/lossless_bench.sh: the frames are loaded into memory once, and sent through an
 * AF_PACKET socket that bypasses the qdisc (PACKET_QDISC_BYPASS), in batches: sendmmsg() of
 * iovecs pointing into the loaded capture, or a PACKET_TX_RING (TPACKET_V2) flushed by one
 * send() per batch. Pacing sleeps until absolute deadlines (one per batch, clock_nanosleep on
 * CLOCK_MONOTONIC), so below its maximum rate it sleeps most of the time.
 *
 *   pcap_blaster -i IFACE -f PCAP [-r PPS] [-c COUNT] [-d SECONDS] [-b BATCH] [-m mmsg|ring]
 *     -r PPS      packets per second (default 0: as fast as possible)
 *     -c COUNT    stop after COUNT packets (default: none; -c or -d is required)
 *     -d SECONDS  stop after SECONDS (fractional; with -r and no -c: COUNT = PPS x SECONDS)
 *     -b BATCH    packets per system call (default 64)
 *     -m MODE     mmsg (sendmmsg, the default) or ring (PACKET_TX_RING)
 *
 * Prints one line on stdout, key=value, for scripts:
 *   pcap_blaster: sent=N failed=F seconds=S pps=R user_s=U sys_s=K late_batches=L
 * sent: frames the kernel accepted; failed: frames it refused (ENOBUFS and the like, retried
 * up to a point, then counted); seconds: from the first send to the end of the last one; pps:
 * sent / seconds; user_s, sys_s: this process' CPU time while sending (getrusage; the receive path of a
 * veth runs in the sender's system call and is part of sys_s); late_batches: batches that
 * started more than one batch interval after their deadline (the sender could not keep up).
 * Frames longer than the interface's MTU + 18 or cut short in the file are skipped (counted
 * on stderr). Exit 0 when everything was sent, 1 on a setup error or when frames were refused.
 * Needs CAP_NET_RAW. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct frames {
    unsigned char *data;  /* every frame, back to back */
    size_t *off;
    uint32_t *len;
    size_t count, bytes, cap_frames, cap_bytes;
    uint32_t max_len;
};

static void die(const char *what)
{
    fprintf(stderr, "pcap_blaster: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void *grow(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "pcap_blaster: out of memory\n");
        exit(1);
    }
    return q;
}

static void load(const char *path, uint32_t max_frame, struct frames *f)
{
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(path, err);
    if (!p) {
        fprintf(stderr, "pcap_blaster: %s\n", err);
        exit(1);
    }
    if (pcap_datalink(p) != DLT_EN10MB) {
        fprintf(stderr, "pcap_blaster: %s: link type %s, not Ethernet\n", path,
                pcap_datalink_val_to_name(pcap_datalink(p)));
        exit(1);
    }
    struct pcap_pkthdr *h;
    const u_char *bytes;
    size_t skipped = 0;
    int r;
    while ((r = pcap_next_ex(p, &h, &bytes)) == 1) {
        if (h->caplen != h->len || h->caplen > max_frame || h->caplen < ETH_HLEN) {
            ++skipped;
            continue;
        }
        if (f->count == f->cap_frames) {
            f->cap_frames = f->cap_frames ? 2 * f->cap_frames : 65536;
            f->off = grow(f->off, f->cap_frames * sizeof *f->off);
            f->len = grow(f->len, f->cap_frames * sizeof *f->len);
        }
        if (f->bytes + h->caplen > f->cap_bytes) {
            f->cap_bytes = f->cap_bytes ? 2 * f->cap_bytes : 1 << 24;
            f->data = grow(f->data, f->cap_bytes);
        }
        memcpy(f->data + f->bytes, bytes, h->caplen);
        f->off[f->count] = f->bytes;
        f->len[f->count] = h->caplen;
        if (h->caplen > f->max_len) f->max_len = h->caplen;
        f->bytes += h->caplen;
        ++f->count;
    }
    if (r == -1) {
        fprintf(stderr, "pcap_blaster: %s: %s\n", path, pcap_geterr(p));
        exit(1);
    }
    pcap_close(p);
    if (skipped) fprintf(stderr, "pcap_blaster: skipped %zu frames (truncated or longer than %u bytes)\n", skipped, max_frame);
    if (!f->count) {
        fprintf(stderr, "pcap_blaster: %s: no frame to send\n", path);
        exit(1);
    }
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void sleep_until(double deadline)
{
    struct timespec t = {.tv_sec = (time_t)deadline};
    t.tv_nsec = (long)((deadline - (double)t.tv_sec) * 1e9);
    if (t.tv_nsec >= 1000000000L) t.tv_nsec = 999999999L;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR) {
    }
}

/* A refused batch (the device or a queue full) is retried after a yield, a bounded number of
 * times in a row; what is still refused then is counted as failed and skipped. */
enum { MAX_RETRIES = 1000 };

struct sender {
    int fd;
    unsigned batch;
    const struct frames *f;
    size_t next;  /* index of the next frame in the capture */
    uint64_t failed;
    /* mmsg */
    struct mmsghdr *msgs;
    struct iovec *iov;
    /* ring */
    unsigned char *ring;
    unsigned frame_size, frame_nr, head;
};

/* Sends `n` frames (n <= batch) starting at s->next; returns how many the kernel took. */
static unsigned send_mmsg(struct sender *s, unsigned n)
{
    for (unsigned i = 0; i < n; ++i) {
        size_t k = (s->next + i) % s->f->count;
        s->iov[i].iov_base = s->f->data + s->f->off[k];
        s->iov[i].iov_len = s->f->len[k];
    }
    unsigned done = 0, retries = 0;
    while (done < n) {
        int r = sendmmsg(s->fd, s->msgs + done, n - done, 0);
        if (r > 0) {
            done += (unsigned)r;
            retries = 0;
            continue;
        }
        if (r < 0 && errno != ENOBUFS && errno != EAGAIN && errno != EINTR) die("sendmmsg");
        if (++retries > MAX_RETRIES) {
            s->failed += n - done;
            break;
        }
        sched_yield();
    }
    s->next = (s->next + n) % s->f->count;
    return done;
}

static struct tpacket2_hdr *ring_frame(struct sender *s, unsigned i)
{
    return (struct tpacket2_hdr *)(s->ring + (size_t)i * s->frame_size);
}

static unsigned send_ring(struct sender *s, unsigned n)
{
    const size_t data_off = TPACKET2_HDRLEN - sizeof(struct sockaddr_ll);
    unsigned queued = 0;
    for (unsigned i = 0; i < n; ++i) {
        struct tpacket2_hdr *h = ring_frame(s, s->head);
        unsigned waits = 0;
        while (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) != TP_STATUS_AVAILABLE) {
            if (__atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE) == TP_STATUS_WRONG_FORMAT) {
                fprintf(stderr, "pcap_blaster: the kernel refused a frame of the TX ring (wrong format)\n");
                exit(1);
            }
            /* Not sent yet: flush, and wait for the kernel to hand the slot back. */
            if (send(s->fd, NULL, 0, 0) < 0 && errno != ENOBUFS && errno != EAGAIN && errno != EINTR) die("send");
            if (++waits > MAX_RETRIES) {
                fprintf(stderr, "pcap_blaster: TX ring slot not released by the kernel\n");
                exit(1);
            }
            sched_yield();
        }
        size_t k = (s->next + i) % s->f->count;
        memcpy((unsigned char *)h + data_off, s->f->data + s->f->off[k], s->f->len[k]);
        h->tp_len = s->f->len[k];
        __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
        s->head = (s->head + 1) % s->frame_nr;
        ++queued;
    }
    /* Blocking send: returns once the queued frames went through the device. */
    unsigned retries = 0;
    while (send(s->fd, NULL, 0, 0) < 0) {
        if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) die("send");
        if (++retries > MAX_RETRIES) break;
        sched_yield();
    }
    s->next = (s->next + n) % s->f->count;
    return queued;
}

static void usage(void)
{
    fprintf(stderr, "usage: pcap_blaster -i IFACE -f PCAP [-r PPS] [-c COUNT] [-d SECONDS] [-b BATCH] [-m mmsg|ring]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *ifname = NULL, *path = NULL, *mode = "mmsg";
    double pps = 0, duration = 0;
    unsigned long long count = 0;
    unsigned batch = 64;
    int opt;
    while ((opt = getopt(argc, argv, "i:f:r:c:d:b:m:")) != -1) {
        switch (opt) {
        case 'i': ifname = optarg; break;
        case 'f': path = optarg; break;
        case 'r': pps = strtod(optarg, NULL); break;
        case 'c': count = strtoull(optarg, NULL, 10); break;
        case 'd': duration = strtod(optarg, NULL); break;
        case 'b': batch = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'm': mode = optarg; break;
        default: usage();
        }
    }
    const int use_ring = strcmp(mode, "ring") == 0;
    if (!ifname || !path || (!count && duration <= 0) || batch < 1 || batch > 4096 || pps < 0 ||
        (!use_ring && strcmp(mode, "mmsg") != 0))
        usage();
    if (!count && pps > 0) count = (unsigned long long)(pps * duration + 0.5);

    int fd = socket(AF_PACKET, SOCK_RAW, 0);  /* protocol 0: this socket receives nothing */
    if (fd < 0) die("socket(AF_PACKET)");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) die(ifname);
    const uint32_t max_frame = (uint32_t)ifr.ifr_mtu + 18;
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = 0, .sll_ifindex = (int)if_nametoindex(ifname)};
    if (!sll.sll_ifindex) die(ifname);
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) die("bind");
    int one = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0) die("PACKET_QDISC_BYPASS");
    int sndbuf = 16 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);

    struct frames f = {0};
    load(path, max_frame, &f);

    struct sender s = {.fd = fd, .batch = batch, .f = &f};
    if (use_ring) {
        int v = TPACKET_V2;
        if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) < 0) die("PACKET_VERSION");
        unsigned fs = 256;
        while (fs < TPACKET2_HDRLEN + f.max_len) fs *= 2;
        struct tpacket_req req = {.tp_block_size = fs < 65536 ? 65536 : fs, .tp_frame_size = fs};
        /* Room for a few batches: at least 4 x batch frames, at least 4 MiB. */
        unsigned frames = 4 * batch;
        if ((size_t)frames * fs < (4u << 20)) frames = (4u << 20) / fs;
        req.tp_block_nr = (unsigned)(((size_t)frames * fs + req.tp_block_size - 1) / req.tp_block_size);
        req.tp_frame_nr = req.tp_block_nr * (req.tp_block_size / fs);
        if (setsockopt(fd, SOL_PACKET, PACKET_TX_RING, &req, sizeof req) < 0) die("PACKET_TX_RING");
        s.frame_size = fs;
        s.frame_nr = req.tp_frame_nr;
        s.ring = mmap(NULL, (size_t)req.tp_block_nr * req.tp_block_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (s.ring == MAP_FAILED) die("mmap(PACKET_TX_RING)");
    } else {
        s.msgs = calloc(batch, sizeof *s.msgs);
        s.iov = calloc(batch, sizeof *s.iov);
        if (!s.msgs || !s.iov) die("calloc");
        for (unsigned i = 0; i < batch; ++i) {
            s.msgs[i].msg_hdr.msg_iov = &s.iov[i];
            s.msgs[i].msg_hdr.msg_iovlen = 1;
        }
    }

    const double interval = pps > 0 ? batch / pps : 0;
    unsigned long long sent = 0, batches = 0, late = 0;
    struct rusage ru0, ru;
    getrusage(RUSAGE_SELF, &ru0);
    const double start = now_s();
    double end = start;
    for (;;) {
        if (count && sent + s.failed >= count) break;
        if (duration > 0 && end - start >= duration) break;
        unsigned n = batch;
        if (count && count - sent - s.failed < n) n = (unsigned)(count - sent - s.failed);
        if (pps > 0) {
            /* Deadline of this batch: absolute, so that the rate does not drift with the time
             * spent sending; a sender behind schedule sends at once (and catches up). */
            const double deadline = start + (double)batches * interval;
            const double t = now_s();
            if (t < deadline) sleep_until(deadline);
            else if (t > deadline + interval) ++late;
        }
        sent += use_ring ? send_ring(&s, n) : send_mmsg(&s, n);
        ++batches;
        end = now_s();
    }
    getrusage(RUSAGE_SELF, &ru);
    const double secs = end - start;
    printf("pcap_blaster: sent=%llu failed=%llu seconds=%.6f pps=%.0f user_s=%.3f sys_s=%.3f late_batches=%llu\n",
           sent, (unsigned long long)s.failed, secs, secs > 0 ? (double)sent / secs : 0.0,
           (double)(ru.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (double)(ru.ru_utime.tv_usec - ru0.ru_utime.tv_usec) * 1e-6,
           (double)(ru.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (double)(ru.ru_stime.tv_usec - ru0.ru_stime.tv_usec) * 1e-6,
           late);
    return s.failed ? 1 : 0;
}
