// dg_dsp.h - two int8 products in one DSP48E2 multiply (the UltraScale+ INT8 packing,
// Xilinx WP486), the MAC array's multiply primitive (hls/src/dg_mac.h).
//
// Two products that share the activation x (output lanes m and m+1 of the array, the same
// input channel) come out of ONE 27x18 signed multiply:
//     P  = ((w_hi << 18) + w_lo) * x     the sum is the DSP48E2's 27-bit pre-adder (A + D)
//     lo = P[17:0] as a signed 18-bit    = w_lo * x
//     hi = (P - lo) >> 18                = P[35:18] as signed + P[17]   (the sign correction)
// Exact for int8 weights and any signed 9-bit x (u8 or s8 activations): |w * x| <= 128 * 256
// < 2^17, so lo never reaches into the upper field except through its sign, which P[17]
// returns. The RTL (sim/rtl/dg_mac_array.sv) computes the same expression; both are tested
// exhaustively against w * x (tests/backends/test_mac_packing.py).
//
// Self-contained (<cstdint> only) so the test compiles it on its own.
#ifndef DG_DSP_H
#define DG_DSP_H

#include <cstdint>

namespace dg {

// w_hi * x and w_lo * x for int8 weights and a signed 9-bit activation (x in -256..255).
// Written in plain integer arithmetic with the DSP's widths in the comments: building an
// ap_int from a negative value shifts a negative number inside ap_types (undefined
// behaviour that UBSan reports in the sanitized C-sim), and the widths are what matters
// for the binding: a 27-bit packed operand times a 9-bit activation into 36 bits.
inline void dsp_mul2(int8_t w_hi, int8_t w_lo, int32_t x, int32_t &p_hi, int32_t &p_lo) {
#pragma HLS INLINE
    const int32_t ad = (int32_t)w_hi * (1 << 18) + (int32_t)w_lo;  // pre-adder: A + D, 27 bits
    const int64_t p = (int64_t)ad * (int64_t)x;                     // one 27x18 multiply, |p| < 2^34
    int32_t lo = (int32_t)(p & 0x3FFFF);                            // P[17:0] ...
    if (lo & 0x20000) lo -= 0x40000;                                // ... as a signed 18-bit value
    p_lo = lo;
    p_hi = (int32_t)((p - lo) / (1 << 18));      // exact: = P[35:18] as signed + P[17]
}

}  // namespace dg

#endif  // DG_DSP_H
