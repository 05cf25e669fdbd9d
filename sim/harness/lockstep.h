// Lockstep mode: the host's reads and writes are commands, and simulated time moves only inside a
// read. A benchmark's cycle counts then depend on the program and the wire's pace alone, never on
// how fast the host or the machine is (sim/lockstep.py is the host's side).
//
// The wire is paced like a UART: after every byte into rx, `rx_gap` cycles pass before the next
// is offered; tx.ready is high one cycle in every `tx_gap + 1`. Stretches in which neither
// direction can move are still simulated cycle by cycle (the core works through them), but with no
// decisions taken per cycle.
//
// Messages from the host (integers little-endian):
//   'P' u32 rx_gap, u32 tx_gap           set the pace (before anything else)
//   'W' u32 n, n bytes                    queue bytes for rx
//   'R' u32 n, u64 idle_budget            read up to n bytes: run until a byte comes or
//                                         idle_budget cycles pass without one while nothing is
//                                         sent; then take the rest of the burst (until n bytes,
//                                         BURST_QUIET_CYCLES without a byte, or READ_WINDOW_CYCLES
//                                         after the first), as a serial port's read returns
// The answer to 'R': u64 cycles so far, u32 n, n bytes.

#pragma once

#include <algorithm>

namespace lockstep {

// A read returns once the device has sent nothing for this many cycles (or n bytes came): longer
// than the pauses inside a device frame, so a read is a frame.
constexpr uint64_t BURST_QUIET_CYCLES = 64;
// ... and at most this many cycles after its first byte (a serial port's latency timer).
constexpr uint64_t READ_WINDOW_CYCLES = 4096;

class PacedWire {
public:
    PacedWire(Device& device, uint64_t rx_gap, uint64_t tx_gap)
        : device_(device), rx_gap_(rx_gap), tx_gap_(tx_gap) {}

    void write(const uint8_t* p, size_t n) { to_device_.append(p, n); }

    // Up to n bytes from the device, by the rules in this file's header.
    std::vector<uint8_t> read(size_t n, uint64_t idle_budget) {
        uint64_t idle = 0;
        while (from_device_.empty() && idle < idle_budget) {
            if (quiet()) idle += wait_for_tx(idle_budget - idle);
            bool sending = !to_device_.empty();
            uint64_t cycles = cycle();
            if (!sending) idle += cycles;
        }
        uint64_t quiet_cycles = 0, window = 0;
        uint64_t quiet_limit = std::max(BURST_QUIET_CYCLES, 2 * tx_gap_);
        while (!from_device_.empty() && from_device_.size() < n && window < READ_WINDOW_CYCLES
               && quiet_cycles < quiet_limit) {
            size_t before = from_device_.size();
            uint64_t cycles = 0;
            if (quiet())
                cycles = wait_for_tx(std::min(quiet_limit - quiet_cycles,
                                              READ_WINDOW_CYCLES - window));
            cycles += cycle();
            window += cycles;
            quiet_cycles = from_device_.size() > before ? 0 : quiet_cycles + cycles;
        }
        size_t take = std::min(n, from_device_.size());
        std::vector<uint8_t> data(from_device_.data(), from_device_.data() + take);
        from_device_.pop(take);
        return data;
    }

private:
    // Nothing to send and the device sent nothing last cycle: wait_for_tx may run.
    bool quiet() const { return to_device_.empty() && !offering_ && !tx_was_valid_; }

    // With nothing to send, hold tx.ready low until tx.valid rises or `budget` cycles pass; the
    // byte, if one came, transfers in the cycle() that follows. Returns the cycles run.
    uint64_t wait_for_tx(uint64_t budget) {
        Sample s = device_.step(false, 0, false);
        uint64_t cycles = 1;
        while (!s.tx_valid && cycles < budget) {
            s = device_.step(false, 0, false);
            ++cycles;
        }
        return cycles;
    }

    // One cycle of the paced wire, after any stretch in which neither direction can move.
    uint64_t cycle() {
        uint64_t rx_wait = !to_device_.empty() && !offering_ ? gap_ : (offering_ ? 0 : UINT64_MAX);
        uint64_t wait = std::min(rx_wait, tx_wait_);
        uint64_t skip = wait > 1 ? wait - 1 : 0;
        for (uint64_t i = 0; i < skip; ++i) device_.step(false, 0, false);
        if (skip) {
            if (!to_device_.empty()) gap_ = gap_ > skip ? gap_ - skip : 0;
            tx_wait_ -= skip;
        }
        if (!offering_ && !to_device_.empty()) {
            if (gap_) --gap_;
            else offering_ = true;
        }
        bool tx_ready;
        if (tx_wait_) {
            --tx_wait_;
            tx_ready = false;
        } else {
            tx_ready = true;
            tx_wait_ = tx_gap_;
        }
        Sample s = device_.step(offering_, offering_ ? to_device_.front() : 0, tx_ready);
        if (offering_ && s.rx_ready) {
            to_device_.pop();
            offering_ = false;
            gap_ = rx_gap_;
        }
        tx_was_valid_ = s.tx_valid;
        if (tx_ready && s.tx_valid) from_device_.push(s.tx_payload);
        return skip + 1;
    }

    Device& device_;
    uint64_t rx_gap_, tx_gap_;
    Bytes to_device_, from_device_;
    bool offering_ = false, tx_was_valid_ = false;
    uint64_t gap_ = 0, tx_wait_ = 0;
};

template <typename T>
T little_endian(const uint8_t* p) {
    T value = 0;
    for (size_t i = 0; i < sizeof(T); ++i) value |= T(p[i]) << (8 * i);
    return value;
}

}  // namespace lockstep

inline void serve_lockstep(Device& device, Connection& host) {
    using lockstep::little_endian;
    std::unique_ptr<lockstep::PacedWire> wire(new lockstep::PacedWire(device, 0, 0));
    uint8_t header[13];
    std::vector<uint8_t> payload;
    while (host.receive_exactly(header, 1)) {
        switch (header[0]) {
        case 'P':
            if (!host.receive_exactly(header + 1, 8)) return;
            wire.reset(new lockstep::PacedWire(device, little_endian<uint32_t>(header + 1),
                                               little_endian<uint32_t>(header + 5)));
            break;
        case 'W': {
            if (!host.receive_exactly(header + 1, 4)) return;
            payload.resize(little_endian<uint32_t>(header + 1));
            if (!host.receive_exactly(payload.data(), payload.size())) return;
            wire->write(payload.data(), payload.size());
            break;
        }
        case 'R': {
            if (!host.receive_exactly(header + 1, 12)) return;
            std::vector<uint8_t> data = wire->read(little_endian<uint32_t>(header + 1),
                                                   little_endian<uint64_t>(header + 5));
            uint8_t answer[12];
            uint64_t cycles = device.cycles();
            for (int i = 0; i < 8; ++i) answer[i] = uint8_t(cycles >> (8 * i));
            for (int i = 0; i < 4; ++i) answer[8 + i] = uint8_t(data.size() >> (8 * i));
            host.send_all(answer, sizeof answer);
            host.send_all(data.data(), data.size());
            break;
        }
        default:
            std::fprintf(stderr, "rill harness: unknown lockstep message 0x%02x\n", header[0]);
            std::exit(2);
        }
    }
}
