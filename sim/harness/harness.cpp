// The `sim` device's simulator: a LinkedCore Verilator model clocked by a C++ loop that serves
// the device's wire (its rx/tx byte streams) on a local TCP socket.
//
// The host driver connects exactly as to a board behind socket:// and speaks the link protocol.
// Python never runs per cycle: the loop below is the whole testbench. It clocks the model by the
// rules of the cocotb bridge (sim/testbenches/bridge_tb.py), so a program's responses and the
// deterministic counters (cycles, busy, instructions) are the same through either:
//
//  - a byte the host sent is offered on rx (valid held, payload the byte) until rx.ready takes it;
//    tx.ready is always high, so every cycle tx.valid is seen high sends one byte to the host;
//  - simulated time only advances while there is work: once the device is idle (the core waits
//    for commands the link does not hold, nothing to send) for SETTLE_CYCLES with nothing offered,
//    the loop blocks on the socket. The core counts no cycles in that state, so none is lost or
//    invented by stopping the clock;
//  - the socket is read between batches of cycles (--batch), and every REFILL_CYCLES while the
//    host's bytes are used up mid-batch; the device's bytes go out once it falls silent.
//
// Lockstep mode (--lockstep) serves a second, cycle-paced protocol on the same socket for
// benchmarks whose figures must not depend on wall-clock time: see lockstep.h.
//
// Waveforms (a model built with --trace or --trace-fst): --trace FILE, optionally only the cycles
// in [--trace-from, --trace-to).

#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "verilated.h"
#include "Vrill_linked_core.h"
#if VM_TRACE_FST
#include "verilated_fst_c.h"
using TraceFile = VerilatedFstC;
#elif VM_TRACE
#include "verilated_vcd_c.h"
using TraceFile = VerilatedVcdC;
#endif

namespace {

// Cycles of `idle` with the wire silent before the loop waits for the host: the COBS encoder may
// still be two cycles from presenting a frame's first byte when `idle` rises.
constexpr int SETTLE_CYCLES = 8;
// While the host's bytes are used up mid-batch, look at the socket every this many cycles.
constexpr uint64_t REFILL_CYCLES = 64;
// The device's bytes go to the host once it has been silent this long (its COBS encoder pauses
// between blocks: a send per pause would cost a system call and a host wake-up every few bytes),
// or once this many are waiting.
constexpr int FLUSH_QUIET_CYCLES = 16;
constexpr size_t FLUSH_BYTES = 4096;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "rill harness: %s: %s\n", what, std::strerror(errno));
    std::exit(2);
}

struct Options {
    std::string port_file;
    uint64_t batch = 4096;
    int accept_timeout_s = 120;
    std::string trace;
    uint64_t trace_from = 0;
    uint64_t trace_to = UINT64_MAX;
    bool lockstep = false;
    std::string record;
    std::string replay;
};

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "rill harness: %s needs a value\n", arg.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (arg == "--port-file") o.port_file = value();
        else if (arg == "--batch") o.batch = std::stoull(value());
        else if (arg == "--accept-timeout") o.accept_timeout_s = std::stoi(value());
        else if (arg == "--trace") o.trace = value();
        else if (arg == "--trace-from") o.trace_from = std::stoull(value());
        else if (arg == "--trace-to") o.trace_to = std::stoull(value());
        else if (arg == "--lockstep") o.lockstep = true;
        else if (arg == "--record") o.record = value();
        else if (arg == "--replay") o.replay = value();
        else if (arg.rfind("+verilator", 0) == 0) continue;   // Verilator's own plusargs
        else {
            std::fprintf(stderr, "rill harness: unknown argument %s\n", arg.c_str());
            std::exit(2);
        }
    }
    if (o.port_file.empty() && o.replay.empty()) {
        std::fprintf(stderr, "usage: %s --port-file FILE [--batch N] [--lockstep] "
                     "[--record FILE] [--trace FILE [--trace-from C] [--trace-to C]]\n"
                     "       %s --replay FILE\n", argv[0], argv[0]);
        std::exit(2);
    }
    if (o.batch < 2) o.batch = 2;
    return o;
}

// The wire's state as the loop sees it in one cycle, sampled before the clock edge.
struct Sample {
    bool rx_ready, tx_valid, idle;
    uint8_t tx_payload;
};

}  // namespace

// The model and its clock; one cycle is "inputs set, outputs sampled, rising edge". Verilator
// spells the ports' double underscore (Amaranth's `rx__valid` for member rx.valid) `___05F`.
class Device {
public:
    explicit Device(const Options& options) : ctx_(new VerilatedContext), options_(options) {
        top_.reset(new Vrill_linked_core(ctx_.get(), "rill_linked_core"));
#if VM_TRACE
        if (!options.trace.empty()) {
            ctx_->traceEverOn(true);
            trace_.reset(new TraceFile);
            top_->trace(trace_.get(), 99);
            trace_->open(options.trace.c_str());
        }
#endif
        top_->clk = 0;
        top_->rst = 1;
        top_->rx___05Fvalid = 0;
        top_->rx___05Fpayload = 0;
        top_->tx___05Fready = 1;
        for (int i = 0; i < 2; ++i) step(false, 0, true);
        top_->rst = 0;
        cycles_ = 0;   // counted from the end of reset, as the device's own counter is
    }

    ~Device() {
        top_->final();
#if VM_TRACE
        if (trace_) trace_->close();
#endif
    }

    // Drive rx for this cycle and tx.ready, sample, and clock the edge.
    Sample step(bool rx_valid, uint8_t rx_payload, bool tx_ready) {
        if (recording_ && rx_valid) offered_.push_back({cycles_, rx_payload});
        top_->rx___05Fvalid = rx_valid;
        top_->rx___05Fpayload = rx_payload;
        top_->tx___05Fready = tx_ready;
        top_->clk = 0;
        top_->eval();
        dump(2 * cycles_ + 2);
        Sample s{bool(top_->rx___05Fready), bool(top_->tx___05Fvalid), bool(top_->idle),
                 uint8_t(top_->tx___05Fpayload)};
        top_->clk = 1;
        top_->eval();
        dump(2 * cycles_ + 3);
        ++cycles_;
        return s;
    }

    uint64_t cycles() const { return cycles_; }

    // Every byte offered on rx and its cycle, for --record; tx.ready must stay high throughout.
    struct Offer {
        uint64_t cycle;
        uint8_t byte;
    };
    void start_recording() { recording_ = true; }
    const std::vector<Offer>& offered() const { return offered_; }

private:
    void dump(uint64_t time) {
#if VM_TRACE
        if (trace_ && cycles_ >= options_.trace_from && cycles_ < options_.trace_to)
            trace_->dump(time);
#else
        (void)time;
#endif
    }

    std::unique_ptr<VerilatedContext> ctx_;
    std::unique_ptr<Vrill_linked_core> top_;
    const Options& options_;
    uint64_t cycles_ = 0;
    bool recording_ = false;
    std::vector<Offer> offered_;
#if VM_TRACE
    std::unique_ptr<TraceFile> trace_;
#endif
};

// A byte queue that is cheap to take from the front of.
class Bytes {
public:
    bool empty() const { return head_ == data_.size(); }
    size_t size() const { return data_.size() - head_; }
    uint8_t front() const { return data_[head_]; }
    void pop() {
        if (++head_ == data_.size()) { data_.clear(); head_ = 0; }
    }
    void pop(size_t n) {
        head_ += n;
        if (head_ >= data_.size()) { data_.clear(); head_ = 0; }
    }
    void push(uint8_t b) { data_.push_back(b); }
    void append(const uint8_t* p, size_t n) { data_.insert(data_.end(), p, p + n); }
    const uint8_t* data() const { return data_.data() + head_; }
    void clear() { data_.clear(); head_ = 0; }

private:
    std::vector<uint8_t> data_;
    size_t head_ = 0;
};

class Connection {
public:
    explicit Connection(int fd) : fd_(fd) {
        int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    ~Connection() { close(fd_); }

    // Whatever has arrived, without waiting; false once the host has closed the connection.
    bool receive(Bytes& into) {
        uint8_t buffer[65536];
        for (;;) {
            ssize_t n = recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
            if (n > 0) { into.append(buffer, size_t(n)); continue; }
            if (n == 0) return false;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
            if (errno == EINTR) continue;
            if (errno == ECONNRESET) return false;
            fail("recv");
        }
    }

    void wait_readable() {
        auto start = std::chrono::steady_clock::now();
        pollfd p{fd_, POLLIN, 0};
        while (poll(&p, 1, -1) < 0)
            if (errno != EINTR) fail("poll");
        waited_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }

    // Seconds spent blocked waiting for the host with the device idle.
    double waited() const { return waited_; }

    // Blocks until `n` bytes arrived; false if the host closed first.
    bool receive_exactly(uint8_t* into, size_t n) {
        while (n) {
            ssize_t got = recv(fd_, into, n, 0);
            if (got == 0) return false;
            if (got < 0) {
                if (errno == EINTR) continue;
                if (errno == ECONNRESET) return false;
                fail("recv");
            }
            into += got;
            n -= size_t(got);
        }
        return true;
    }

    void send_all(const uint8_t* p, size_t n) {
        while (n) {
            ssize_t sent = send(fd_, p, n, MSG_NOSIGNAL);
            if (sent < 0) {
                if (errno == EINTR) continue;
                if (errno == EPIPE || errno == ECONNRESET) return;   // the host has gone
                fail("send");
            }
            p += sent;
            n -= size_t(sent);
        }
    }

private:
    int fd_;
    double waited_ = 0;
};

#include "lockstep.h"

namespace {

int accept_host(const Options& options) {
    int server = socket(AF_INET, SOCK_STREAM, 0);
    if (server < 0) fail("socket");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    if (bind(server, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) fail("bind");
    if (listen(server, 1) < 0) fail("listen");
    socklen_t length = sizeof address;
    if (getsockname(server, reinterpret_cast<sockaddr*>(&address), &length) < 0)
        fail("getsockname");
    // Written to a temporary name and renamed, so the reader never sees a partial port.
    std::string partial = options.port_file + ".tmp";
    FILE* f = std::fopen(partial.c_str(), "w");
    if (!f) fail("port file");
    std::fprintf(f, "%u", unsigned(ntohs(address.sin_port)));
    std::fclose(f);
    if (std::rename(partial.c_str(), options.port_file.c_str()) < 0) fail("port file");
    pollfd p{server, POLLIN, 0};
    int ready;
    while ((ready = poll(&p, 1, options.accept_timeout_s * 1000)) < 0)
        if (errno != EINTR) fail("poll");
    if (ready == 0) {
        std::fprintf(stderr, "rill harness: no host connected within %d s\n",
                     options.accept_timeout_s);
        std::exit(3);
    }
    int fd = accept(server, nullptr, nullptr);
    if (fd < 0) fail("accept");
    close(server);
    return fd;
}

// The co-simulation loop: run while there is work, block on the socket while there is none.
void serve(Device& device, Connection& host, const Options& options) {
    Bytes inbox, outbox;
    bool offering = false, open = true;
    int settled = 0;   // consecutive cycles idle, wire silent, nothing offered
    int silent = 0;    // consecutive cycles without a byte from the device
    while (open) {
        if (!outbox.empty()) {
            host.send_all(outbox.data(), outbox.size());
            outbox.clear();
        }
        if (inbox.empty() && !offering && settled >= SETTLE_CYCLES) host.wait_readable();
        open = host.receive(inbox);
        for (uint64_t cycle = 1; cycle <= options.batch; ++cycle) {
            if (!offering && inbox.empty() && open && cycle % REFILL_CYCLES == 0)
                open = host.receive(inbox);
            if (!offering && !inbox.empty()) offering = true;
            Sample s = device.step(offering, offering ? inbox.front() : 0, true);
            bool offered = offering;
            if (offering && s.rx_ready) {
                inbox.pop();
                offering = false;
            }
            if (s.tx_valid) outbox.push(s.tx_payload);
            silent = s.tx_valid ? 0 : silent + 1;
            bool quiet = s.idle && !s.tx_valid && !offered && inbox.empty();
            settled = quiet ? settled + 1 : 0;
            if (settled >= SETTLE_CYCLES || outbox.size() >= FLUSH_BYTES
                || (!outbox.empty() && inbox.empty() && silent >= FLUSH_QUIET_CYCLES))
                break;
        }
    }
}

// --record: the cycles a served run simulated and every byte offered on rx in them, as
// little-endian u64 cycle count, then (u64 cycle, u8 byte) per offer.
void write_record(const Device& device, const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) fail("record file");
    auto put = [&](uint64_t value, int bytes) {
        for (int i = 0; i < bytes; ++i) std::fputc(int((value >> (8 * i)) & 0xff), f);
    };
    put(device.cycles(), 8);
    for (const auto& offer : device.offered()) {
        put(offer.cycle, 8);
        put(offer.byte, 1);
    }
    std::fclose(f);
}

// --replay: the recorded run's cycles again on a fresh model, with no socket and no decisions:
// the bare model's speed on exactly the served run's work.
void replay(Device& device, const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail("replay file");
    std::vector<uint8_t> data;
    uint8_t buffer[65536];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0) data.insert(data.end(), buffer,
                                                                         buffer + n);
    std::fclose(f);
    if (data.size() < 8 || (data.size() - 8) % 9) {
        std::fprintf(stderr, "rill harness: %s is not a record file\n", path.c_str());
        std::exit(2);
    }
    uint64_t total = lockstep::little_endian<uint64_t>(data.data());
    size_t at = 8;
    uint64_t next = at < data.size() ? lockstep::little_endian<uint64_t>(&data[at]) : UINT64_MAX;
    for (uint64_t cycle = 0; cycle < total; ++cycle) {
        if (cycle == next) {
            device.step(true, data[at + 8], true);
            at += 9;
            next = at < data.size() ? lockstep::little_endian<uint64_t>(&data[at]) : UINT64_MAX;
        } else {
            device.step(false, 0, true);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    Options options = parse(argc, argv);
#if !VM_TRACE
    if (!options.trace.empty()) {
        std::fprintf(stderr, "rill harness: this model was built without tracing\n");
        return 2;
    }
#endif
    auto start = std::chrono::steady_clock::now();
    auto report = [&](Device& device, const char* what, double waited) {
        double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                             .count();
        // One line sim/harness.py reads back: the simulator's speed, on stdout (the log).
        std::printf("rill harness: %s %llu cycles in %.6f s, %.6f s of it waiting for the host\n",
                    what, (unsigned long long)device.cycles(), seconds, waited);
        std::fflush(stdout);
    };
    if (!options.replay.empty()) {
        Device device(options);
        start = std::chrono::steady_clock::now();
        replay(device, options.replay);
        report(device, "replayed", 0);
        return 0;
    }
    Connection host(accept_host(options));
    Device device(options);
    if (!options.record.empty()) device.start_recording();
    start = std::chrono::steady_clock::now();
    if (options.lockstep)
        serve_lockstep(device, host);
    else
        serve(device, host, options);
    report(device, options.lockstep ? "lockstep" : "served", host.waited());
    if (!options.record.empty()) write_record(device, options.record);
    return 0;
}
