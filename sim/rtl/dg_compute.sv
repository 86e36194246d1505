`default_nettype none
// dg_compute: the engine's compute (one job: drive the MAC array).
//
// Takes the tiles the loader has made complete (`full` half, its group's bank loaded) in
// sequence order and walks, per conv pixel of the tile, kernel positions x n-groups: one
// Tm x Tn MAC-array step per cycle (stage c0 address -> c1 buffer reads -> c2 operands),
// tiles back to back. A residual-only tile or a layer without active input channels gives
// one accumulate-nothing step per output pixel. The MAC results (with their tag: bank,
// residual-only, tile-last, pixel, residual bytes) go to the write-back, which also gets
// the tile's record when it starts; `tile_done` frees the tile's half for the loader.
// The write-back queue level throttles the issue (no result is ever dropped).
// An im2col layer (formats im2col flag) walks, per conv pixel, S = ceil(k*k*C/Tn) steps of
// Tn flattened (ky, kx, c) taps instead: lane i of step r takes tap f = r*Tn + i, i.e.
// byte o = f mod (k*C) of patch row py*s + f div (k*C), at px*s*C + o. The loader stores
// patch rows at a pitch = k*C (mod NB), so lane i's byte is at A + i + m_i*(pitch - k*C)
// (A: lane 0's byte, m_i: the rows lane i is past lane 0's): bank (A + i) mod NB, as for
// a 1x1 conv, plus m_i*(pitch - k*C)/NB rows in that bank (c1_badd). A lane reads zero past
// the taps, in a row outside the input (row_ok) or outside the loaded bytes [t_lo, t_hi).
// A depthwise layer (op OP_DWCONV, L.dw) runs every m-group of a tile on the tile's ONE
// patch (tiles -> m-groups: L.SG passes over the half, one tile record each, the half freed
// after the last). Per conv pixel and m-group it reads the pixel's k*k taps at once from the
// tap-banked dw patch buffer (dg_loader: bank (r mod k, c mod k), so the taps of a pixel at
// stride 1 or 2 never share a bank): lane m reads its own channel, stored channel m0 + m
// (m0 = sg * TM: the compact index when gated) of every tap. The MAC array takes DW_TPS =
// Tn/2 taps per lane and step (one product per DSP48E2, dg_mac_array in_dw), so a pixel is
// DW_TSTEPS = ceil(k*k / DW_TPS) steps (small Tn = 4: 5 steps; Tn = 1: 9 taps x 2 lane
// parities). Step s feeds taps s*DW_TPS ..; their weights are bytes (tap mod Tn) of word
// (s*DW_TPS) div Tn of the lane's row (weight row sg * S + word, as dg_loader lays the
// layer's rows). Where that is two steps and the k*k taps fit one word (Tn = 16, k = 3:
// ultra96), the two steps are lane parities instead (DW_LP): a step feeds all k*k taps of
// one lane of each pair, tap n on the pair's DSP n (dg_mac_array LP), the same step count.
// A tap outside the input (or a zeroed halo) reads zero.
module dg_compute
    import dg_pkg::*;
(
    input  wire                         clk,
    input  wire                         rst,
    input  dg_layer_t                   L,
    input  wire                         run,
    input  wire                         run_init,
    input  wire [DG_MAX_TILES-1:0]      bitmap,
    // tiles from the loader
    input  wire [1:0]                   full,
    input  wire [15:0]                  t_idx [2],
    input  wire [15:0]                  t_o0y [2], t_o0x [2], t_cy0 [2], t_cx0 [2],
    input  wire [7:0]                   t_oh [2], t_ow [2], t_chy [2], t_chw [2],
    input  wire                         t_res_only [2],
    input  wire [15:0]                  t_g [2],
    input  wire                         t_glast [2],
    input  wire [IAW-1:0]               rowbase [2][PMAX],
    input  wire                         row_ok [2][PMAX],
    input  wire [15:0]                  row_tb [2][PMAX],
    input  wire                         row_tv [2][PMAX],
    input  wire [IAW-1:0]               colbyte [2][PMAX],
    input  wire                         col_ok [2][PMAX],
    input  wire [7:0]                   col_t [2][PMAX],
    input  wire                         col_tv [2][PMAX],
    input  wire [15:0]                  t_lo [2], t_hi [2],
    input  wire [1:0]                   t_bk_ok,       // half h's group bank loaded (dg_loader, registered)
    output logic                        cp_h,          // half being computed
    output wire                         tile_done,     // last step of the tile in half cp_h issued
    // buffer reads (c1) and data (c2)
    output logic                        c1_v,
    output logic [IAW-1:0]              c1_addr,
    output logic [IAW-1:0]              c1_badd [NB],
    output logic                        c1_gb,
    output logic [WAW-1:0]              c1_wa,
    output logic [RAW-1:0]              c1_rbaddr,
    output logic                        c2_v,
    input  wire [DG_TM*DG_TN*8-1:0]     wb_q,
    input  wire [7:0]                   ib_q [NB],
    input  wire [31:0]                  t_dwrb [2],        // depthwise: bytes per dw bank row
    input  wire [15:0]                  dw_cst,            // depthwise: a pixel's bytes in its dw bank
    output logic [DW_AW-1:0]            c1_dwlin [DW_NBK], // depthwise: lane 0's byte per dw bank
    input  wire [7:0]                   dw_q [DW_NBK][DW_NBW],
    input  wire [DG_TM*8-1:0]           rb_q,
    // to the write-back
    output logic                        tr_push,       // tile record of the started tile
    output logic [TR_W-1:0]             tr_in,
    input  wire                         tr_in_ready,
    output wire                         start_fire,    // a tile starts (max-pool interlock)
    input  wire                         wb_busy,       // max-pool: the previous tile is pooling
    input  wire [$clog2(WBQ_DEPTH):0]   wbq_count,
    output wire                         mac_v,
    output wire [DG_TM*32-1:0]          mac_acc,
    output wire [MTAG_W-1:0]            mac_tag,
    output wire                         idle
);
    // depthwise layer: L.dw gated by the config, so with DG_DEPTHWISE = 0 (no depthwise hardware;
    // the descriptor check refuses op 5) synthesis drops every depthwise path of this unit
    wire l_dw = DG_DEPTHWISE && L.dw;
    // depthwise by lane parity (DW_LP): when the array's taps per step make a pixel two steps
    // (DW_TSTEPS * DW_PAR == 2) and the k*k taps are bytes 0 .. k*k - 1 of one weight word, the
    // two steps feed lanes 2k and 2k + 1 in turn, every tap n on DSP n of the pair (the conv
    // weight operands; dg_mac_array LP): the same steps, and each dw bank's bytes are reduced
    // to one per lane pair (by the step's parity) before the taps' bank selects, which then move
    // half the bytes and absorb the conv / depthwise operand select (ultra96: one select per
    // DSP operand bit). CW_*: the taps per step, lane parities and tap steps the control walks
    localparam bit DW_LP = DG_DEPTHWISE && DG_TM >= 2 && DG_TN >= 2 && DW_NBK <= DG_TN
                           && DW_TSTEPS * DW_PAR == 2;
    localparam int CW_TPS = DW_LP ? DW_NBK : DW_TPS;
    localparam int CW_PAR = DW_LP ? 2 : DW_PAR;
    localparam int CW_TSTEPS = DW_LP ? 1 : DW_TSTEPS;
    // Layer constants, registered (L is latched by the sequencer cycles before `run`), so the
    // issue control below compares no L field on its register-to-register paths (issue 16)
    logic L_no_mac;                    // no active input channel: acc = 0 (+ bias), no patch, no weights
    logic lc_n_is1, lc_k_is1, lc_s_is1, lc_sg_gt1;
    // a pixel's first step is also its last (the step flags' restart values)
    wire lc_last1 = L.im2col ? lc_s_is1 : l_dw ? (CW_TSTEPS == 1 && CW_PAR == 1) : (lc_k_is1 && lc_n_is1);
    logic [31:0] lc_scs;               // stride * stored input channels (im2col column step)
    // N - 2, k - 2, S - 2: a counter's next value is its last (N - 2 and k - 2 in their
    // counters' widths, so the compares are no wider: for N, k < 2 they are never asked)
    logic [15:0] lc_nm2;
    logic [7:0] lc_km2;
    logic [31:0] lc_sm2;
    // im2col lanes (issue 16: no per-lane division or multiply in c0): lane i of a step is
    // tap o0 + i of lane 0's kernel row, i.e. byte l_o[i] = (o0 + i) mod kc of the row l_m[i]
    // = (o0 + i) div kc rows past lane 0's, whose bank rows are l_b[i] = l_m[i] * dq. A
    // pixel's first step has o0 = 0: (i mod kc, i div kc, (i div kc) * dq), layer constants
    // lc_o0 / lc_m0 (one register stage from L.kc: i < Tn, so only kc < Tn divides) and lc_b0
    // (shift-adds, a second stage; L is latched >= 2 cycles before `run`). A step advances
    // every lane by Tn = qa*kc + ra taps: o' = o + ra (- kc when o >= kc - ra: the lane
    // crosses a row, wrap), and lane 0 crosses with it (w0), so l_m' = l_m + wrap - w0 and
    // l_b' = l_b + (wrap - w0) * dq. The last step's lanes past the kernel's kkc taps are
    // lc_lastmask = 0 ((S - 1) * Tn + i >= kkc).
    localparam int LMW = $clog2(DG_TN + 1);       // l_m / lc_m0 width: 0 .. Tn
    // bank-row offsets are bank rows: the loader adds c1_badd to a bank's row address of
    // $clog2(IDEPTH) bits (wrapping), so they are kept (and sent) modulo 2^BRW
    localparam int BRW = $clog2(IDEPTH);
    logic [LMW-1:0] lc_m0 [DG_TN];
    logic [15:0] lc_o0 [DG_TN];
    logic [BRW-1:0] lc_b0 [DG_TN];
    logic [15:0] lc_kmr;                          // kc - ra: a lane at o >= kc - ra wraps
    logic [DG_TN-1:0] lc_lastmask;
    localparam int KCW = (DG_TN > 2) ? $clog2(DG_TN) : 1;
    wire lc_kc_small = (L.kc >> KCW) == 16'd0;
    wire [KCW-1:0] lc_kcl = L.kc[KCW-1:0];
    logic [15:0] lc_nin;                          // L.n_in
    logic [IAW-1:0] lc_cst;                       // L.cin_st (mod 2^IAW: a column's bytes)
    // im2col: patch rows are at a pitch (dg_loader: rowbase[h][r] = rowbase[h][0] + r * pitch),
    // so the bank of a row's base (mod NB) follows cp_r with adds: pitch, qa * pitch and
    // stride * pitch mod NB
    logic [NBL-1:0] lc_pl, lc_qpl, lc_spl;
    // kc < Tn: i div kc / i mod kc bit by bit as a constant table over kc's low KCW bits (one
    // small LUT each, no priority chain over the kc values), gated by the high bits' zero test;
    // kc = 0 or >= Tn: 0 / i
    function automatic logic [2**KCW-1:0] lc_tab(input int i, input int bi, input bit quo);
        logic [2**KCW-1:0] t;
        for (int v = 0; v < 2**KCW; v++) begin
            int val;
            val = (v >= 1 && v < DG_TN) ? (quo ? i / v : i % v) : (quo ? 0 : i);
            t[v] = ((val >> bi) & 1) != 0;
        end
        return t;
    endfunction
    logic [LMW-1:0] lc_m0_d [DG_TN];
    logic [15:0] lc_o0_d [DG_TN];
    for (genvar i = 0; i < DG_TN; i++) begin : g_lc
        for (genvar bi = 0; bi < LMW; bi++) begin : g_m
            localparam logic [2**KCW-1:0] TQ = lc_tab(i, bi, 1'b1);
            assign lc_m0_d[i][bi] = lc_kc_small && TQ[lc_kcl];
        end
        for (genvar bi = 0; bi < 16; bi++) begin : g_o
            localparam logic [2**KCW-1:0] TR = lc_tab(i, bi, 1'b0);
            localparam bit DFL = ((i >> bi) & 1) != 0;
            assign lc_o0_d[i][bi] = lc_kc_small ? TR[lc_kcl] : DFL;
        end
    end
    always_ff @(posedge clk) begin
        for (int i = 0; i < DG_TN; i++) begin
            logic [BRW-1:0] b;
            lc_m0[i] <= lc_m0_d[i];
            lc_o0[i] <= lc_o0_d[i];
            b = '0;
            for (int k = 0; k < LMW; k++) if (lc_m0[i][k]) b = b + (BRW'(L.i2c_dq) << k);
            lc_b0[i] <= L.im2col ? b : '0;      // (zero otherwise: c1_badd needs no gate)
            lc_lastmask[i] <= ((32'(L.S) - 32'd1) << TNL) + 32'(i) < 32'(L.kkc);
        end
        lc_kmr <= L.kc - L.i2c_ra;
        lc_nin <= L.n_in;
        lc_cst <= IAW'(L.cin_st);
        lc_pl <= NBL'(L.pitch);
        lc_qpl <= NBL'(NBL'(L.i2c_qa) * NBL'(L.pitch));
        lc_spl <= NBL'(NBL'(L.stride) * NBL'(L.pitch));
        L_no_mac <= L.n_in == 16'd0;
        lc_n_is1 <= L.N == 16'd1;
        lc_k_is1 <= L.k == 1;
        lc_s_is1 <= L.S == 16'd1;
        lc_sg_gt1 <= L.SG > 16'd1;
        lc_nm2 <= L.N - 16'd2;
        lc_km2 <= 8'(L.k) - 8'd2;
        lc_sm2 <= 32'(L.S) - 32'd2;
        lc_scs <= 32'(L.stride) * 32'(L.cin_st);
    end
    typedef enum logic [1:0] {CP_IDLE, CP_RUN, CP_SUB} cp_state_t;
    cp_state_t cp_state;
    logic [7:0] cp_py, cp_px, cp_ky, cp_kx;
    logic [15:0] cp_ng;
    logic [15:0] cp_nrem;          // n_in - cp_ng * Tn: the n-group's active lanes (>= 1)
    logic [IAW-1:0] cp_hc;         // dense: the half's base + the n-group's channel, cp_h * IHALF
                                   // + cp_ng * Tn (a register, so c1_addr is a 3-operand sum)
    logic [WAW-1:0] cp_wa;
    logic [15:0] cp_o0;            // im2col: lane 0's tap = byte cp_o0 of its kernel row (cp_r)
    logic [15:0] l_o [DG_TN];      // im2col: lane i's byte of its kernel row (l_o[0] = cp_o0)
    logic [LMW-1:0] l_m [DG_TN];   // its kernel rows past lane 0's
    logic [BRW-1:0] l_b [DG_TN];   // l_m[i] * i2c_dq: its bank-row offset (mod 2^BRW)
    logic cp_res_only;
    logic cp_gb;                   // weight/param bank of the tile's group
    logic [7:0] cp_ny, cp_nx;      // loop extents (conv tile or output tile)
    logic [4:0] inflight;          // pixels issued whose sums are not yet in the write-back queue
    // depthwise: tap counter, sub-step (lanes q*NB.. of the group / lane parity) and the
    // group's first stored channel
    logic [7:0] cp_t;
    logic [7:0] cp_q;
    logic [15:0] cp_m0;
    logic [15:0] cp_sg;            // depthwise: the m-group of this pass over the tile
    logic [WAW-1:0] cp_wrow;       // depthwise: its first weight row (cp_sg * S)
    logic [15:0] c1_sg, c2_sg;
    // The step counters' terminal conditions, kept as registered flags (updated with their
    // counters, from compares of the counters' current values), so a step's "last" and the
    // tile's end are a few gates from registers: f_ng/kx/ky_last (conv), f_wa_last (im2col:
    // cp_wa + 1 == S), f_t/q_last (depthwise), f_px/py_last (cp_px + 1 == cp_nx, ...),
    // f_sub_more (depthwise: another m-group after cp_sg), f_first (the pixel's first step)
    logic f_ng_last, f_kx_last, f_ky_last, f_wa_last, f_t_last, f_q_last;
    logic f_px_last, f_py_last, f_sub_more, f_first;
    // f_last: the step is its pixel's last (cp_last), a register updated with the flags it is
    // made of, so the tile end's branch (and the chained start's enables) select by registers
    logic f_last;
    // running products of the counters (no multiplier in c0): cp_pys = cp_py * stride,
    // cp_pxs = cp_px * stride, cp_cb = cp_px * stride * cin_st (im2col), cp_rbrow = cp_py * t_ow
    logic [15:0] cp_pys, cp_pxs;
    // the patch row / column of the step (dense: cp_r = cp_pys + cp_ky, cp_c = cp_pxs + cp_kx;
    // im2col: cp_r = lane 0's row, cp_pys + its kernel row) as registers updated with their
    // terms, so the row / column tables are indexed by a register (no adder before the
    // PMAX-way read) and both kinds read rowbase through the one index
    logic [15:0] cp_r, cp_c;
    logic [31:0] cp_cb;
    // dense: the step's column byte colbyte[cp_h][cp_c] as a register updated with cp_c (the
    // loader's column table is linear over the tile's patch columns, colbyte[h][c] =
    // colbyte[h][0] + c * cin_st mod 2^IAW), so no PMAX-way read precedes the address sum;
    // cp_cbb: the pixel's first column's, colbyte[cp_h][0] + cp_cb; cp_cb0: colbyte[cp_h][0]
    logic [IAW-1:0] cp_cc, cp_cbb, cp_cb0;
    // im2col: rowbase[cp_h][cp_r] mod NB (cp_rbl) and rowbase[cp_h][cp_pys] mod NB (cp_rbpl) as
    // registers updated with cp_r / cp_pys, so the bank rotation (c1_badd) has no table read on
    // its path
    logic [NBL-1:0] cp_rbl, cp_rbpl;
    logic [31:0] cp_rbrow;
    // depthwise: the pixel's patch row py*s = dw_rq * k + dw_rr and column px*s = dw_cq * k +
    // dw_cr; lane 0's byte of tap-row quotient dw_rq (+1) and column quotient dw_cq (+1):
    // dw_r0/dw_r1 = half base + m0 + (dw_rq (+1)) * t_dwrb, dw_c0/dw_c1 = (dw_cq (+1)) * dw_cst
    logic [7:0] dw_rr, dw_cr;
    logic [DW_AW-1:0] dw_r0, dw_r1, dw_c0, dw_c1;

    // step pipeline c1 / c2
    logic c1_first, c1_last, c1_ok, c1_res_only, c1_tlast;
    logic c1_hchk;                             // dense zero halo: c1_ok needs bitmap[c1_hbit]
    // the row / column table bits of the step (d = 0: dense; d < DW_K: the depthwise taps'
    // rows and columns; inside the table, ok, tile valid) registered as read, and combined in
    // c1 (c1_okp, c1_ten: kept apart, in parallel with the bitmap reads there), so no gate
    // follows a table read in c0
    logic [DW_K-1:0] c1_rin, c1_rok, c1_rtv, c1_cin, c1_cok, c1_ctv;
    // the tile bits' parts, the row's tile bit base and the column's tile column (per d), are
    // registered as read and added in c1 (c1_hbit, c1_tbit), before the bitmap reads there:
    // no add follows a table read in c0
    logic [I_MAX_TILES-1:0] c1_hrtb [DW_K];
    logic [7:0] c1_hct [DW_K];
    wire [I_MAX_TILES-1:0] c1_hbit = c1_hrtb[0] + I_MAX_TILES'(c1_hct[0]);
    (* keep *) wire c1_okp = c1_ok && (L.im2col || l_dw || (c1_rok[0] && c1_cok[0]
                                                           && (!L.zero_halo || (c1_rtv[0] && c1_ctv[0]))));
    logic [DG_TN-1:0] c1_lane;
    logic [7:0] c1_py, c1_px;
    logic c2_first, c2_last, c2_ok, c2_res_only, c2_tlast, c2_gb;
    logic [DG_TN-1:0] c2_lane;
    logic [NBL-1:0] c2_rot;
    logic [7:0] c2_py, c2_px;
    logic [DG_TN*9-1:0] c2_x;
    logic [DG_TM-1:0] c1_dlane, c2_dlane;      // depthwise: lanes fed in this step
    logic [CW_TSTEPS-1:0] c1_selv;             // depthwise: the step's taps are s*CW_TPS .. (one-hot
                                               // s: cp_t only takes the values s*CW_TPS)
    logic [DG_TM*CW_TPS-1:0] c2_won;            // depthwise: lane m's slot j is fed (dg_mac_array in_won)
    logic [DG_TM*CW_TPS*9-1:0] c2_xd;
    // depthwise: per kernel tap its dw bank (c1_tbank; DW_FACT: its bank row, patch row mod k,
    // one-hot, and per kernel column tx its bank column, patch column mod k, one-hot) and
    // whether it is inside the input (and not a zeroed halo); per tap the rotation of its
    // read (lane 0's column)
    logic [3:0] c1_tbank [DW_NBK];
    logic [DW_K-1:0] c1_tbr [DW_NBK];
    logic [DW_K-1:0] c1_bcol [DW_K];
    // (c1_rin .. c1_ctv), and its zero-halo tile bit (c1_tbit); c1_ten: the tap is in the
    // step (c1_selv) and inside the input, c1_tbm: its tile's bitmap bit
    logic [I_MAX_TILES-1:0] c1_tbit [DW_NBK];
    (* keep *) logic [DW_NBK-1:0] c1_ten;
    logic [DW_NBK-1:0] c1_tbm;
    // depthwise: a tap's tile bit is bitmap[row part + column part], the column part a tile
    // column (< DG_MAX_GRID <= HG = 2^HGL for a tap inside the input, the only ones whose bit
    // is used). With the row part R = HG * rh + rl: bitmap[R + C] = bit rl + C of the 2 * HG
    // bits from HG * rh on (c1_hwin: one 2^HRH-way pick per tap row, of the bitmap's
    // overlapping double rows, hpr), a pick by an (HGL + 1)-bit sum per tap, instead of an
    // I_MAX_TILES-bit add and a DG_MAX_TILES-way read per tap (checked against the read in
    // simulation)
    localparam int HW = DG_MAX_GRID;
    localparam int HGL = (HW > 1) ? $clog2(HW) : 1;
    localparam int HG = 1 << HGL;
    localparam int HRH = (I_MAX_TILES > HGL) ? I_MAX_TILES - HGL : 1;
    logic [2*HG-1:0] hpr [2**HRH];
    logic [2*HG-1:0] c1_hwin [DW_K];
    logic [HGL:0] c1_hsum [DW_NBK];
    always_comb begin
        for (int a = 0; a < 2**HRH; a++)
            for (int j = 0; j < 2 * HG; j++)
                hpr[a][j] = (a * HG + j < DG_MAX_TILES) ? bitmap[(a * HG + j < DG_MAX_TILES) ? a * HG + j : 0] : 1'b0;
        for (int d = 0; d < DW_K; d++) c1_hwin[d] = hpr[HRH'(c1_hrtb[d] >> HGL)];
        for (int t = 0; t < DW_NBK; t++) begin
            c1_tbit[t] = c1_hrtb[t / DW_K] + I_MAX_TILES'(c1_hct[t % DW_K]);
            c1_ten[t] = c1_selv[t / CW_TPS] && c1_rin[t / DW_K] && c1_rok[t / DW_K] && c1_cin[t % DW_K]
                        && c1_cok[t % DW_K] && (!L.zero_halo || (c1_rtv[t / DW_K] && c1_ctv[t % DW_K]));
            c1_hsum[t] = (HGL+1)'(c1_hrtb[t / DW_K][HGL-1:0]) + (HGL+1)'(c1_hct[t % DW_K][HGL-1:0]);
            c1_tbm[t] = c1_hwin[t / DW_K][c1_hsum[t]];
        end
    end
    logic [DW_NBWL-1:0] c1_trot [DW_NBK];       // per tap: its read's rotation (lane 0's column)
    // per slot j of the step (tap s*CW_TPS + j), chosen in c1 so that c2 only selects data:
    // its dw bank (c2_jbk; DW_FACT: c2_jsel, one-hot over (bank row, kernel column), with
    // c2_bcol, the kernel columns' bank columns), rotation, whether it reads (a tap of the
    // kernel, inside the input), and which half of the Tn weight bytes holds the step's taps
    logic [3:0] c2_jbk [CW_TPS];
    logic [DW_NBK-1:0] c2_jsel [CW_TPS];
    logic [DW_K-1:0] c2_bcol [DW_K];
    logic [DW_NBWL-1:0] c2_jrot [CW_TPS];
    // (c2_jon = c2_jen && c2_jhb: the zero-halo bitmap bit registered apart from the other
    // conditions, so no gate follows the bitmap reads in c1)
    logic [CW_TPS-1:0] c2_jen, c2_jhb;
    wire [CW_TPS-1:0] c2_jon = c2_jen & c2_jhb;
    logic c2_whalf;
    // depthwise: the slots a whalf (odd) step can feed, those with a kernel tap s*CW_TPS + j
    // (ultra96, 9 taps in 2 steps of 8: slot 0 only), so the MAC array's half select is
    // left only on them
    function automatic int dw_whalf_slots();
        int n;
        n = 0;
        for (int st = 1; st < CW_TSTEPS; st += 2)
            for (int j = 0; j < CW_TPS; j++) if (st * CW_TPS + j < DW_NBK && j + 1 > n) n = j + 1;
        return n;
    endfunction
    localparam int DW_WHS = dw_whalf_slots();
    // DW_LP: per dw bank its read's rotation (lane 0's column), the step's lane parity, and
    // per tap its bank row (patch row mod k) encoded, DW_K in a step of another layer kind
    // (c2: the DSP operand is then the conv activation)
    localparam int TRW = $clog2(DW_K + 1);
    logic [DW_NBWL-1:0] c2_brot [DW_NBK];
    logic c1_q, c2_q;
    logic [TRW-1:0] c2_trow [DW_NBK];
    dg_mac_array #(.TM(DG_TM), .TN(DG_TN), .TAG_W(MTAG_W), .TPS(CW_TPS), .WHS(DW_WHS),
                   .DW(DG_DEPTHWISE), .LP(DW_LP)) mac (
        .clk(clk), .rst(rst), .in_valid(c2_v), .in_first(c2_first), .in_last(c2_last),
        .in_w(wb_q), .in_x(c2_x), .in_dw(l_dw), .in_won(c2_won), .in_whalf(c2_whalf), .in_xd(c2_xd),
        .in_tag({c2_gb, c2_res_only, c2_tlast, c2_py, c2_px, DG_DEPTHWISE ? c2_sg : 16'd0, rb_q}),
        .out_valid(mac_v), .out_acc(mac_acc), .out_tag(mac_tag));

    // ------------------------------------------------------------------ compute tile start
    // a tile in half h can start when it is complete, its group's bank is loaded, the
    // write-back can take its record, and (max-pool) a pool half is free (wb_busy: the
    // tile before the previous one is still being pooled)
    logic [1:0] cp_can_start;
    always_comb begin
        for (int h = 0; h < 2; h++)
            cp_can_start[h] = full[h] && tr_in_ready && !(L.maxpool && wb_busy)
                              && t_bk_ok[h];
    end
    // a pixel's first step: the kernel / n-group / weight / tap counters and their last flags
    task automatic cp_step_restart();
        cp_ky <= 8'd0;
        cp_kx <= 8'd0;
        cp_ng <= 16'd0;
        cp_nrem <= lc_nin;
        cp_hc <= IAW'(32'(cp_h) * IHALF);   // (a tile start: its half, cp_start)
        cp_wa <= '0;
        cp_o0 <= 16'd0;
        cp_r <= cp_pys;                 // (cp_ky = cp_kx = 0, lane 0's kernel row 0; a new pixel's
        cp_c <= cp_pxs;                 // cp_pys / cp_pxs override these below)
        cp_cc <= cp_cbb;
        cp_rbl <= cp_rbpl;
        l_o <= lc_o0;
        l_m <= lc_m0;
        l_b <= lc_b0;
        cp_t <= 8'd0;
        cp_q <= 8'd0;
        f_kx_last <= lc_k_is1;
        f_ky_last <= lc_k_is1;
        f_wa_last <= lc_s_is1;
        f_t_last <= CW_TSTEPS == 1;
        f_q_last <= CW_PAR == 1;
        f_first <= 1'b1;
        f_last <= cp_res_only || L_no_mac || lc_last1;
    endtask
    task automatic cp_start(input logic h);
        cp_res_only <= t_res_only[h];
        f_last <= t_res_only[h] || L_no_mac || lc_last1;   // (after cp_step_restart's)
        cp_gb <= t_g[h][0];
        cp_ny <= (t_res_only[h] || L_no_mac) ? t_oh[h] : t_chy[h];
        cp_nx <= (t_res_only[h] || L_no_mac) ? t_ow[h] : t_chw[h];
        cp_py <= 8'd0;
        cp_px <= 8'd0;
        // (the step counters' restart values: cp_step_restart, called with it)
        cp_hc <= IAW'(32'(h) * IHALF);
        f_ng_last <= lc_n_is1;          // (a step's restart: with the flag's own update)
        cp_m0 <= 16'd0;
        cp_sg <= 16'd0;
        cp_wrow <= '0;
        cp_pys <= 16'd0;
        cp_pxs <= 16'd0;
        cp_r <= 16'd0;
        cp_c <= 16'd0;
        cp_cb <= 32'd0;
        cp_cb0 <= colbyte[h][0];
        cp_cbb <= colbyte[h][0];
        cp_cc <= colbyte[h][0];
        cp_rbl <= NBL'(rowbase[h][0]);
        cp_rbpl <= NBL'(rowbase[h][0]);
        cp_rbrow <= 32'd0;
        f_px_last <= ((t_res_only[h] || L_no_mac) ? t_ow[h] : t_chw[h]) == 8'd1;
        f_py_last <= ((t_res_only[h] || L_no_mac) ? t_oh[h] : t_chy[h]) == 8'd1;
        f_sub_more <= l_dw && lc_sg_gt1;
        dw_rr <= 8'd0;
        dw_cr <= 8'd0;
        dw_r0 <= DW_AW'(32'(h) * DW_HALF);
        dw_r1 <= DW_AW'(32'(h) * DW_HALF + t_dwrb[h]);
        dw_c0 <= '0;
        dw_c1 <= DW_AW'(dw_cst);
        tr_push <= 1'b1;
        tr_in <= {t_g[h][0], t_glast[h] && (!DG_DEPTHWISE || L.SG == 16'd1), t_idx[h], t_o0y[h], t_o0x[h], t_cy0[h],
                  t_cx0[h], t_oh[h], t_ow[h], t_chy[h], t_chw[h], 16'd0};
        cp_state <= CP_RUN;
    endtask
    // depthwise: the next m-group's pass over the same half (its own tile record)
    wire [15:0] sg_next = cp_sg + 16'd1;
    wire sub_more = DG_DEPTHWISE && f_sub_more;      // l_dw && sg_next < L.SG

    // ------------------------------------------------------------------ compute issue (c0)
    wire [$clog2(PMAX)-1:0] cp_ri = $clog2(PMAX)'(cp_r);
    wire [$clog2(PMAX)-1:0] cp_ci = $clog2(PMAX)'(cp_c);
    // the current half's row / column table entries at rows cp_r + d and columns cp_c + d
    // (d < DW_K: the dense step's at d = 0, a depthwise pixel's taps' rows and columns), read
    // in groups of four: entries 4a .. 4a + 3 + (DW_K - 1) (a = the index div 4, entries past
    // the table zero) picked once by the index's high bits, then per d a 4:1 pick by its low
    // two bits, so the DW_K shifted reads share the wide picks (a full read per d costs ~1.4x
    // the LUTs) and no add precedes a read; the index is inside the table (h_rin / h_cin:
    // cp_r + d < PMAX) by a compare of the register, beside the read
    localparam int TPW = $clog2(PMAX);
    localparam int NGA = 2 ** (TPW - 2);          // groups a = index div 4 (TPW-bit index)
    localparam int GE = 4 + DW_K - 1;             // entries per group read
    localparam int RFW = I_MAX_TILES + 2;         // row fields: tile bit base, tv, ok
    localparam int CTW = (I_MAX_TILES < 8) ? I_MAX_TILES : 8;
    localparam int CFW = CTW + 2;                 // column fields: tile column, tv, ok
    wire [IAW-1:0] h_rowbase = rowbase[cp_h][cp_ri];
    logic h_rin [DW_K], h_cin [DW_K];
    logic h_rok [DW_K], h_rtv [DW_K], h_cok [DW_K], h_ctv [DW_K];
    logic [I_MAX_TILES-1:0] h_rtb [DW_K];
    logic [7:0] h_ct [DW_K];
    logic [RFW-1:0] rf_g [GE];
    logic [CFW-1:0] cf_g [GE];
    always_comb begin
        logic [RFW-1:0] rt [2][NGA][GE];
        logic [CFW-1:0] ct [2][NGA][GE];
        for (int h = 0; h < 2; h++)
            for (int a = 0; a < NGA; a++)
                for (int e = 0; e < GE; e++) begin
                    logic in;
                    in = 4 * a + e < PMAX;
                    rt[h][a][e] = in ? {I_MAX_TILES'(row_tb[h][in ? 4 * a + e : 0]), row_tv[h][in ? 4 * a + e : 0],
                                        row_ok[h][in ? 4 * a + e : 0]} : '0;
                    ct[h][a][e] = in ? {CTW'(col_t[h][in ? 4 * a + e : 0]), col_tv[h][in ? 4 * a + e : 0],
                                        col_ok[h][in ? 4 * a + e : 0]} : '0;
                end
        for (int e = 0; e < GE; e++) begin
            rf_g[e] = rt[cp_h][cp_ri[TPW-1:2]][e];
            cf_g[e] = ct[cp_h][cp_ci[TPW-1:2]][e];
        end
        for (int d = 0; d < DW_K; d++) begin
            logic [RFW-1:0] r4 [4];
            logic [CFW-1:0] c4 [4];
            logic [RFW-1:0] rv;
            logic [CFW-1:0] cv;
            for (int b = 0; b < 4; b++) begin
                r4[b] = rf_g[b + d];
                c4[b] = cf_g[b + d];
            end
            rv = r4[cp_ri[1:0]];
            cv = c4[cp_ci[1:0]];
            h_rin[d] = 32'(cp_r) + 32'(d) < PMAX;
            h_cin[d] = 32'(cp_c) + 32'(d) < PMAX;
            h_rok[d] = rv[0];
            h_rtv[d] = rv[1];
            h_rtb[d] = rv[RFW-1:2];
            h_cok[d] = cv[0];
            h_ctv[d] = cv[1];
            h_ct[d] = 8'(cv[CFW-1:2]);
        end
    end
    // (the zero-halo test's tile bit is added and looked up in c1, c1_hbit: the bitmap holds
    // still while a layer runs; the row / column bits are combined there too, c1_okp)
    // im2col: lane 0's patch row and byte (rows hold patch column 0 at rowbase)
    wire [15:0] i2c_r0 = cp_r;
    wire [31:0] i2c_cb = cp_cb;
    // the step's patch byte: the half's base (+ the dense n-group's channel: cp_hc) + the row's
    // base (one rowbase read for both kinds) + the column's byte (dense: cp_cc; im2col: lane 0's
    // byte cb + o0)
    // (the register part cp_hc + column byte is summed apart, kept: not merged into one
    // multi-operand sum with the read, in parallel with the rowbase read, so one LUT and a chain
    // follow the read; the column byte's select is its own variable, a LUT per bit, not the
    // chain's)
    (* keep *) wire [IAW-1:0] ad_c = L.im2col ? IAW'(i2c_cb + 32'(cp_o0)) : cp_cc;
    (* keep *) wire [IAW-1:0] ad_p = cp_hc + ad_c;
    wire [IAW-1:0] cp_addr = ad_p + h_rowbase;
    // im2col: lane 0's bank (the rotation of the bank offsets below) is the low bits of cp_addr,
    // (ad_p + rowbase) mod NB, with the row base's bits from the register cp_rbl: no table read
    // on the rotation's path (outside im2col the offsets rotated are zero)
    wire [NBL-1:0] i2c_addr = NBL'(ad_p) + cp_rbl;
    logic [DG_TN-1:0] i2c_lane;
    logic [BRW-1:0] i2c_badd [NB];
    // the loaded byte window [t_lo, t_hi) relative to the pixel's column byte i2c_cb: lane i
    // is inside when lo_d <= l_o[i] < hi_d (l_o < 2^16)
    wire signed [33:0] lo_d = 34'(t_lo[cp_h]) - 34'(i2c_cb);
    wire signed [33:0] hi_d = 34'(t_hi[cp_h]) - 34'(i2c_cb);
    wire lo_le0 = lo_d <= 0, lo_big = lo_d >= 34'sd65536;
    wire hi_le0 = hi_d <= 0, hi_big = hi_d >= 34'sd65536;
    // bank b holds lane (b - addr) mod NB: a rotation of the lanes' offsets, as radix-4
    // barrel stages (one 4:1 mux, a LUT6, per bit and stage; i2c_lb[s]: after s stages)
    localparam int NBST = (NBL + 1) / 2;
    logic [BRW-1:0] i2c_lb [NBST+1][NB];
    always_comb begin
        for (int p = 0; p < NB; p++) i2c_lb[0][p] = (p < DG_TN) ? l_b[p % DG_TN] : '0;
        for (int k = 0; k < NBST; k++) begin
            logic [1:0] d;
            d = 2'((32'(i2c_addr) >> (2 * k)) & ((2 * k + 1 < NBL) ? 3 : 1));
            for (int b = 0; b < NB; b++) begin
                logic [BRW-1:0] c4 [4];
                for (int e = 0; e < 4; e++) c4[e] = i2c_lb[k][(b + NB - (e << (2 * k)) % NB) % NB];
                i2c_lb[k+1][b] = c4[d];
            end
        end
        for (int b = 0; b < NB; b++) i2c_badd[b] = i2c_lb[NBST][b];
        for (int i = 0; i < DG_TN; i++) begin
            logic [31:0] row;
            logic [$clog2(PMAX)-1:0] rix;
            logic fv, rv, cv;
            fv = !f_wa_last || lc_lastmask[i];
            row = 32'(i2c_r0) + 32'(l_m[i]);
            rix = $clog2(PMAX)'(row);
            rv = fv && row < PMAX && row_ok[cp_h][rix];
            cv = (lo_le0 || (!lo_big && l_o[i] >= lo_d[15:0]))
                 && !hi_le0 && (hi_big || l_o[i] < hi_d[15:0]);
            i2c_lane[i] = fv && rv && cv;
        end
    end
    wire cp_dense = !L.im2col && !l_dw;
    wire cp_ok = !cp_res_only && !L_no_mac;
    // depthwise: the conv pixel's k*k taps (patch row r = py*s + ky, column c = px*s + kx)
    // are in the k*k distinct dw banks (r mod k, c mod k) (stride 1 or 2, k = 3): every step
    // reads all of them at lane 0's byte (r div k) * t_dwrb + (c div k) * C + m0 of the half
    logic [DW_AW-1:0] dw_lin [DW_NBK];
    logic [3:0] dw_tbank [DW_NBK];
    logic [DW_K-1:0] dw_tbr [DW_NBK];
    logic [DW_K-1:0] dw_bcol [DW_K];
    logic [DW_NBWL-1:0] dw_trot [DW_NBK];
    always_comb begin
        for (int b = 0; b < DW_NBK; b++) begin
            // bank (br, bc) holds the tap whose row py*s + ky = br (mod k): ky = (br - dw_rr)
            // mod k, past a multiple of k (row quotient + 1) exactly when br < dw_rr
            dw_lin[b] = ((32'(b) / DW_K < 32'(dw_rr)) ? dw_r1 : dw_r0)
                      + ((32'(b) % DW_K < 32'(dw_cr)) ? dw_c1 : dw_c0);
        end
        for (int x = 0; x < DW_K; x++) begin
            logic [31:0] bc;
            bc = 32'(dw_cr) + 32'(x);
            dw_bcol[x] = DW_K'(1) << ((bc >= DW_K) ? bc - DW_K : bc);
        end
        for (int t = 0; t < DW_NBK; t++) begin
            logic [31:0] br, bc;
            // (depthwise: cp_r = cp_pys, cp_c = cp_pxs; tap (ty, tx) reads the tables at rows
            // cp_r + ty and columns cp_c + tx, tap 0 shares the dense step's reads)
            br = 32'(dw_rr) + 32'(t / DW_K);
            bc = 32'(dw_cr) + 32'(t % DW_K);
            dw_tbank[t] = 4'(((br >= DW_K) ? br - DW_K : br) * DW_K + ((bc >= DW_K) ? bc - DW_K : bc));
            dw_tbr[t] = DW_K'(1) << ((br >= DW_K) ? br - DW_K : br);
            dw_trot[t] = DW_NBWL'(((br >= DW_K) ? dw_r1 : dw_r0) + ((bc >= DW_K) ? dw_c1 : dw_c0));
        end
    end
    // depthwise step: taps cp_t .. cp_t + CW_TPS - 1 (CW_TSTEPS steps per pixel), lane
    // parity cp_q when CW_PAR = 2 (Tn = 1, or DW_LP)
    wire dw_qlast = f_q_last;       // cp_q + 1 == CW_PAR
    wire dw_tlast = f_t_last;       // cp_t / CW_TPS + 1 == CW_TSTEPS
    wire cp_first = cp_res_only || L_no_mac || f_first;
    // cp_res_only || L_no_mac || (im2col ? f_wa_last : l_dw ? dw_tlast && dw_qlast : f_ky_last
    // && f_kx_last && f_ng_last) (checked in simulation)
    wire cp_last = f_last;
    // the flags' values after an increment of their counter
    // (cnt + 2 == X as cnt == X - 2, X - 2 a registered layer constant: for X < 2 the flag is
    // never asked, the counter being at its last value)
    wire nx_ng_last = cp_ng == lc_nm2;
    wire nx_kx_last = cp_kx == lc_km2;
    wire nx_ky_last = cp_ky == lc_km2;
    wire nx_wa_last = 32'(cp_wa) == lc_sm2;
    wire nx_t_last = 32'(cp_t) / CW_TPS + 2 == CW_TSTEPS;
    wire nx_q_last = 32'(cp_q) + 32'd2 == CW_PAR;
    wire nx_px_last = cp_px + 8'd2 == cp_nx;
    wire nx_py_last = cp_py + 8'd2 == cp_ny;
    wire nx_sub_more = l_dw && 32'(sg_next) + 32'd1 < 32'(L.SG);
    // depthwise: the next column / row's remainder mod k (stride 1 or 2 < k)
    wire [7:0] dw_cr_s = dw_cr + 8'(L.stride);
    wire [7:0] dw_rr_s = dw_rr + 8'(L.stride);
    wire dw_c_wrap = 32'(dw_cr_s) >= DW_K;
    wire dw_r_wrap = 32'(dw_rr_s) >= DW_K;
    logic [DG_TM-1:0] dw_lane;
    always_comb begin
        for (int m = 0; m < DG_TM; m++)
            dw_lane[m] = (CW_PAR == 1 || 32'(m) % 2 == 32'(cp_q) % 2) && 32'(cp_m0) + 32'(m) < 32'(L.n_in);
    end
    wire cp_tlast = cp_last && f_py_last && f_px_last;
    // the write-back queue stall, wbq_count + inflight >= WBQ_DEPTH - 2, as wbq_count >= cp_thr,
    // cp_thr = max(WBQ_DEPTH - 2 - inflight, 0) a register set from inflight's next value with
    // it: no add between wbq_count and the step registers' enables
    logic [$clog2(WBQ_DEPTH):0] cp_thr;
    wire cp_stall = wbq_count >= cp_thr;
    wire cp_issue = cp_state == CP_RUN && !cp_stall;
    logic [DG_TN-1:0] cp_lane;
    always_comb begin
        for (int i = 0; i < DG_TN; i++) cp_lane[i] = L.im2col ? i2c_lane[i] : 32'(i) < 32'(cp_nrem);
    end

    // the byte rotations below (element i of the result = element (i + r) mod N of the
    // input) as radix-4 barrel stages: one 4:1 mux (a LUT6) per bit and stage
    localparam int DWST = (DW_NBWL + 1) / 2;
    // depthwise, padded dw banks (dg_pkg DW_PADDED, dg_loader's dw_cst): a pixel's
    // stride in its bank is C rounded up to a multiple of dw_pad_g(C), so a read's rotation
    // (lane 0's column) is a multiple of dw_lane_step(m) whenever lane m is fed: a narrow
    // pick per lane (ultra96: lane 0 8-way, lane 1 4-way, lanes 2-4 2-way, the rest fixed)
    // instead of a full rotation per slot
    // lane m is fed only if C > m; the rotation is then a multiple of dw_pad_g(C) (half base,
    // row and column strides) and of Tm (m0, C > Tm only): the smallest such step over C > m.
    // A fed lane's byte is in the read's first row (rotation + m < DW_NBW: C <= dw_pad_g(C)
    // below DW_NBW, whose multiples the pixel starts are; m0 + Tm within a multiple of
    // DW_NBW above), which dg_loader's dw read relies on under DW_PADDED
    function automatic int dw_lane_step(input int m);
        int st, g;
        st = DW_NBW;
        for (int c = m + 1; c <= m + 1 + DW_NBW + DG_TM; c++) begin   // (then g = DW_NBW)
            g = dw_pad_g(c);
            if (c > DG_TM && DG_TM < g) g = DG_TM;
            if (g < st) st = g;
        end
        return st;
    endfunction
    // per lane m: the rotation bits its pick keeps (above its step), a constant
    function automatic logic [DG_TM*DW_NBWL-1:0] dw_lane_masks();
        logic [DG_TM*DW_NBWL-1:0] v;
        for (int m = 0; m < DG_TM; m++) v[m*DW_NBWL +: DW_NBWL] = ~DW_NBWL'(dw_lane_step(m) - 1);
        return v;
    endfunction
    localparam logic [DG_TM*DW_NBWL-1:0] DW_LMASK = dw_lane_masks();
    // depthwise: a slot's bank pick. With CW_TPS >= k*k - 1 (Tn >= 16) every slot but slot 0
    // takes one tap, so one kernel column: the picks are factored (DW_FACT), per bank row r
    // and kernel column x the bank (r, c2_bcol[x]) (dw_col, a 3-way AND-OR shared by the
    // slots), then per slot a 3-way AND-OR of its column's dw_col (ultra96-like 16 x 16:
    // -0.7k LUT). With fewer taps per step a slot has two or three kernel columns and the
    // 9-way pick by c2_jbk is the cheaper one (syn_8x8: +0.9k LUT factored)
    localparam bit DW_FACT = CW_TPS >= DW_NBK - 1;
    logic [7:0] dw_col [DW_K][DW_K][DW_NBW];
    always_comb begin
        for (int r = 0; r < DW_K; r++)
            for (int x = 0; x < DW_K; x++)
                for (int c = 0; c < DW_NBW; c++) begin
                    dw_col[r][x][c] = 8'd0;
                    for (int b = 0; b < DW_K; b++)
                        dw_col[r][x][c] = dw_col[r][x][c] | ({8{c2_bcol[x][b]}} & dw_q[r * DW_K + b][c]);
                end
    end
    logic [7:0] ib_rot [NBST+1][NB];            // dense: ib_q rotated by c2_rot
    // DW_LP (below): each dw bank rotated (unpadded), its byte per lane pair, per bank row and
    // kernel column the bank column's
    logic [7:0] lp_rot [DW_NBK][DWST+1][DW_NBW];
    logic [7:0] lp_e [DW_NBK][DG_TM/2];
    logic [7:0] lp_f [DW_K][DW_K][DG_TM/2];
    logic [7:0] dw_rot [CW_TPS][DWST+1][DW_NBW]; // depthwise: slot j's bank rotated by c2_jrot[j]
    always_comb begin
        for (int b = 0; b < NB; b++) ib_rot[0][b] = ib_q[b];
        for (int k = 0; k < NBST; k++) begin
            logic [1:0] d;
            d = 2'((32'(c2_rot) >> (2 * k)) & ((2 * k + 1 < NBL) ? 3 : 1));
            for (int b = 0; b < NB; b++) begin
                logic [7:0] c4 [4];
                for (int e = 0; e < 4; e++) c4[e] = ib_rot[k][(b + (e << (2 * k))) % NB];
                ib_rot[k+1][b] = c4[d];
            end
        end
        for (int j = 0; j < CW_TPS; j++) begin
            // slot j's bank (DW_FACT: an AND-OR over the (bank row, kernel column) pairs its
            // taps can have, of the picks dw_col; else the 9-way pick by c2_jbk)
            for (int c = 0; c < DW_NBW; c++) begin
                logic [7:0] v;
                v = 8'd0;
                for (int x = 0; x < DW_K; x++) begin
                    logic has;
                    has = 1'b0;
                    for (int u = j; u < DW_NBK; u += CW_TPS) if (u % DW_K == x) has = 1'b1;
                    if (has)
                        for (int r = 0; r < DW_K; r++) v = v | ({8{c2_jsel[j][r * DW_K + x]}} & dw_col[r][x][c]);
                end
                dw_rot[j][0][c] = DW_FACT ? v : dw_q[c2_jbk[j]][c];
            end
            for (int k = 0; k < DWST; k++) begin
                logic [1:0] d;
                d = 2'((32'(c2_jrot[j]) >> (2 * k)) & ((2 * k + 1 < DW_NBWL) ? 3 : 1));
                for (int c = 0; c < DW_NBW; c++) begin
                    logic [7:0] c4 [4];
                    for (int e = 0; e < 4; e++) c4[e] = dw_rot[j][k][(c + (e << (2 * k))) % DW_NBW];
                    dw_rot[j][k+1][c] = c4[d];
                end
            end
        end
        for (int i = 0; i < DG_TN; i++) begin
            logic [7:0] v;
            v = ib_rot[NBST][i];
            c2_x[i*9 +: 9] = (c2_ok && c2_lane[i]) ? (L.in_signed ? {v[7], v} : {1'b0, v}) : 9'd0;
        end
        // depthwise: lane m's slot j is tap t = c2_sel + j: its byte is column (rot + m) mod
        // DW_NBW of the tap's dw bank, its weight byte t mod Tn of its row word (the step's
        // taps share a word: CW_TPS divides Tn; t mod Tn = j (+ Tn/2 when c2_whalf), which the
        // MAC array selects from wb_q itself). A slot that is off switches its weight off in
        // the MAC array (in_won: the DSP48E2's INMODE), so its activation needs no zeroing;
        // except at Tn = 1, where the array ORs the pair's two activations into its one
        // multiply (one of them must be zero)
        c2_xd = '0;
        for (int m = 0; m < DG_TM; m++) begin
            for (int j = 0; j < CW_TPS; j++) begin
                logic [7:0] v;
                logic on;
                if (DW_PADDED) begin
                    logic [DW_NBWL-1:0] r;
                    r = c2_jrot[j] & DW_LMASK[m*DW_NBWL +: DW_NBWL];
                    v = dw_rot[j][0][DW_NBWL'(32'(m) + 32'(r))];
                end else v = dw_rot[j][DWST][m];
                on = c2_ok && c2_dlane[m] && c2_jon[j];
                if (!DW_LP)
                    c2_xd[(m*CW_TPS+j)*9 +: 9] = (DG_TN == 1 && !on) ? 9'd0
                                                 : (L.in_signed ? {v[7], v} : {1'b0, v});
                c2_won[m*CW_TPS+j] = on;
            end
        end
        // DW_LP: DSP (k, n < k*k)'s B operand, the conv activation c2_x[n] or the fed lane's
        // (2k + c2_q) tap n: per dw bank and lane pair the fed lane's byte (lp_e: its column,
        // m + the read's rotation, by the lane's narrow pick when padded), per bank row and
        // kernel column the bank column's (lp_f, c2_bcol), per tap its bank row's, by an
        // encoded select whose spare value is the conv activation (one 4:1 per bit at k = 3)
        if (DW_LP) begin
            for (int b = 0; b < DW_NBK; b++) begin
                for (int c = 0; c < DW_NBW; c++) lp_rot[b][0][c] = dw_q[b][c];
                for (int k = 0; k < DWST; k++) begin
                    logic [1:0] d;
                    d = 2'((32'(c2_brot[b]) >> (2 * k)) & ((2 * k + 1 < DW_NBWL) ? 3 : 1));
                    for (int c = 0; c < DW_NBW; c++) begin
                        logic [7:0] c4 [4];
                        for (int e = 0; e < 4; e++) c4[e] = lp_rot[b][k][(c + (e << (2 * k))) % DW_NBW];
                        lp_rot[b][k+1][c] = c4[d];
                    end
                end
                for (int k = 0; k < DG_TM / 2; k++) begin
                    logic [7:0] v [2];
                    for (int q = 0; q < 2; q++) begin
                        if (DW_PADDED) begin
                            logic [DW_NBWL-1:0] r;
                            r = c2_brot[b] & DW_LMASK[(2*k+q)*DW_NBWL +: DW_NBWL];
                            v[q] = dw_q[b][DW_NBWL'(32'(2*k+q) + 32'(r))];
                        end else v[q] = lp_rot[b][DWST][2*k+q];
                    end
                    lp_e[b][k] = c2_q ? v[1] : v[0];
                end
            end
            for (int r = 0; r < DW_K; r++)
                for (int x = 0; x < DW_K; x++)
                    for (int k = 0; k < DG_TM / 2; k++) begin
                        lp_f[r][x][k] = 8'd0;
                        for (int b = 0; b < DW_K; b++)
                            lp_f[r][x][k] = lp_f[r][x][k] | ({8{c2_bcol[x][b]}} & lp_e[r * DW_K + b][k]);
                    end
            for (int k = 0; k < DG_TM / 2; k++)
                for (int n = 0; n < DW_NBK; n++) begin
                    logic [8:0] v;
                    v = c2_x[n*9 +: 9];
                    for (int r = 0; r < DW_K; r++)
                        if (c2_trow[n] == TRW'(r))
                            v = L.in_signed ? {lp_f[r][n % DW_K][k][7], lp_f[r][n % DW_K][k]}
                                            : {1'b0, lp_f[r][n % DW_K][k]};
                    c2_xd[(k*CW_TPS+n)*9 +: 9] = v;
                end
        end
    end
    assign tile_done = run && cp_state == CP_RUN && cp_issue && cp_last && f_px_last
                       && f_py_last && !sub_more;
    assign start_fire = run && ((cp_state == CP_IDLE && cp_can_start[cp_h]) || (tile_done && cp_can_start[!cp_h]));
    wire cp_step = run && cp_state == CP_RUN && cp_issue;     // a step issues
    assign idle = cp_state == CP_IDLE && inflight == 0 && !c1_v && !c2_v;

    always_ff @(posedge clk) begin
        tr_push <= 1'b0;
        if (run_init) cp_h <= 1'b0;
        // -------------------------------------------------------------- compute
        c1_v <= cp_issue;
        c1_first <= cp_first;
        c1_last <= cp_last;
        c1_ok <= cp_ok;
        for (int d = 0; d < DW_K; d++) begin
            c1_rin[d] <= h_rin[d];
            c1_rok[d] <= h_rok[d];
            c1_rtv[d] <= h_rtv[d];
            c1_cin[d] <= h_cin[d];
            c1_cok[d] <= h_cok[d];
            c1_ctv[d] <= h_ctv[d];
            c1_hrtb[d] <= h_rtb[d];
            c1_hct[d] <= h_ct[d];
        end
        c1_hchk <= cp_dense && L.zero_halo;
        c1_lane <= cp_lane;
        c1_addr <= cp_addr;
        // (zero unless im2col: l_b restarts at lc_b0, zero then, and only im2col steps move it)
        for (int b = 0; b < NB; b++) c1_badd[b] <= IAW'(i2c_badd[b]);
        c1_wa <= l_dw ? cp_wrow + WAW'(cp_t >> TNL) : WAW'(cp_wa);
        c1_sg <= cp_sg;
        for (int st = 0; st < CW_TSTEPS; st++) c1_selv[st] <= cp_t == 8'(st * CW_TPS);
        c1_dlane <= dw_lane;
        for (int b = 0; b < DW_NBK; b++) c1_dwlin[b] <= DG_DEPTHWISE ? dw_lin[b] : '0;
        c1_tbank <= dw_tbank;
        c1_tbr <= dw_tbr;
        c1_bcol <= dw_bcol;
        c1_trot <= dw_trot;
        c1_rbaddr <= $clog2(2*RPIX)'(32'(cp_h) * RPIX + cp_rbrow + 32'(cp_px));
        c1_res_only <= cp_res_only;
        c1_gb <= cp_gb;
        c1_tlast <= cp_tlast;
        c1_py <= cp_py;
        c1_px <= cp_px;
        c2_v <= c1_v;
        c2_first <= c1_first;
        c2_last <= c1_last;
        // (with the depthwise windows: the dense step's bit is tap (0, 0)'s)
        c2_ok <= c1_okp && (!c1_hchk || (DG_DEPTHWISE ? c1_tbm[0] : bitmap[c1_hbit]));
        c2_lane <= c1_lane;
        for (int j = 0; j < CW_TPS; j++) begin
            // slot j's tap s*CW_TPS + j (none past the k*k taps): an AND-OR by the one-hot
            // step c1_selv, no compare, add or modulo on the path
            logic [DW_NBK-1:0] bs;
            logic [3:0] bk;
            logic [DW_NBWL-1:0] rot;
            logic on, hb;
            int nst;
            bs = '0;
            bk = 4'd0;
            rot = '0;
            on = 1'b0;
            hb = 1'b0;
            nst = 0;
            for (int st = 0; st < CW_TSTEPS; st++) if (st * CW_TPS + j < DW_NBK) nst++;
            for (int st = 0; st < CW_TSTEPS; st++) begin
                int u;
                u = st * CW_TPS + j;
                if (u < DW_NBK) begin
                    for (int r = 0; r < DW_K; r++) bs[r * DW_K + u % DW_K] |= c1_selv[st] && c1_tbr[u][r];
                    bk = bk | ({4{c1_selv[st]}} & c1_tbank[u]);
                    rot = rot | ({DW_NBWL{c1_selv[st]}} & c1_trot[u]);
                    on = on || c1_ten[u];       // (c1_selv[st] in c1_ten)
                    // (a slot with one tap needs no step select: c2_jen is off in the others)
                    hb = hb || ((nst == 1 || c1_selv[st]) && c1_tbm[u]);
                end
            end
            c2_jsel[j] <= bs;
            c2_jbk[j] <= bk;
            c2_jrot[j] <= rot;
            c2_jen[j] <= on;
            c2_jhb[j] <= !L.zero_halo || hb;
        end
        begin
            logic wh;
            wh = 1'b0;
            for (int st = 1; st < CW_TSTEPS; st += 2) wh = wh || c1_selv[st];
            c2_whalf <= wh;
        end
        c2_bcol <= c1_bcol;
        c1_q <= cp_q[0];
        c2_q <= c1_q;
        for (int b = 0; b < DW_NBK; b++) c2_brot[b] <= c1_dwlin[b][DW_NBWL-1:0];
        for (int t = 0; t < DW_NBK; t++) begin
            logic [TRW-1:0] e;
            e = TRW'(DW_K);
            if (l_dw)
                for (int r = 0; r < DW_K; r++) if (c1_tbr[t][r]) e = TRW'(r);
            c2_trow[t] <= e;
        end
        c2_sg <= c1_sg;
        c2_dlane <= c1_dlane;
        c2_rot <= c1_addr[NBL-1:0];
        c2_res_only <= c1_res_only;
        c2_gb <= c1_gb;
        c2_tlast <= c1_tlast;
        c2_py <= c1_py;
        c2_px <= c1_px;
        begin
            logic [4:0] nx;
            nx = inflight + 5'(cp_issue && cp_last) - 5'(mac_v);
            inflight <= nx;
            cp_thr <= (32'(nx) >= WBQ_DEPTH - 2) ? '0 : $bits(cp_thr)'(WBQ_DEPTH - 2 - 32'(nx));
        end
        if (run) begin
            case (cp_state)
                CP_IDLE: begin
                    // a tile start from idle (start_fire): the step counters' restart values,
                    // then the tile's (cp_start overrides cp_hc / cp_r / cp_c by its half)
                    if (cp_can_start[cp_h]) begin
                        cp_step_restart();
                        cp_start(cp_h);
                    end
                end
                CP_RUN: begin
                    if (cp_issue) begin
                        if (cp_last) begin
                            cp_step_restart();
                            if (f_px_last) begin
                                cp_px <= 8'd0;
                                cp_pxs <= 16'd0;
                                cp_c <= 16'd0;
                                cp_cb <= 32'd0;
                                cp_cbb <= cp_cb0;
                                cp_cc <= cp_cb0;
                                f_px_last <= cp_nx == 8'd1;
                                dw_cr <= 8'd0;
                                dw_c0 <= '0;
                                dw_c1 <= DW_AW'(dw_cst);
                                cp_py <= cp_py + 8'd1;
                                cp_pys <= cp_pys + 16'(L.stride);
                                cp_r <= cp_pys + 16'(L.stride);
                                cp_rbl <= cp_rbpl + lc_spl;
                                cp_rbpl <= cp_rbpl + lc_spl;
                                cp_rbrow <= cp_rbrow + 32'(t_ow[cp_h]);
                                f_py_last <= nx_py_last;
                                dw_rr <= dw_r_wrap ? dw_rr_s - 8'(DW_K) : dw_rr_s;
                                if (dw_r_wrap) begin
                                    dw_r0 <= dw_r1;
                                    dw_r1 <= dw_r1 + DW_AW'(t_dwrb[cp_h]);
                                end
                                if (f_py_last && sub_more) begin
                                    // depthwise: the tile's next m-group on the same patch
                                    cp_py <= 8'd0;
                                    cp_pys <= 16'd0;
                                    cp_r <= 16'd0;
                                    cp_rbrow <= 32'd0;
                                    f_py_last <= cp_ny == 8'd1;
                                    dw_rr <= 8'd0;
                                    dw_r0 <= DW_AW'(32'(cp_h) * DW_HALF + 32'(sg_next) * DG_TM);
                                    dw_r1 <= DW_AW'(32'(cp_h) * DW_HALF + 32'(sg_next) * DG_TM + t_dwrb[cp_h]);
                                    cp_sg <= sg_next;
                                    f_sub_more <= nx_sub_more;
                                    cp_m0 <= 16'(32'(sg_next) * DG_TM);
                                    cp_wrow <= cp_wrow + WAW'(L.S);
                                    cp_state <= CP_SUB;
                                end else if (f_py_last) begin
                                    // tile done: its half is read for the last time this
                                    // cycle (c0) and next cycle (c1 -> banks), long before
                                    // the prefetcher can refill it; chain the next tile
                                    cp_h <= !cp_h;
                                    cp_state <= CP_IDLE;
                                    // a chained tile start (start_fire with tile_done), in the
                                    // branch of the tile's last step, so the start's registers
                                    // select by the step's flags and the other half's start
                                    // enable, not by start_fire's OR (the step counters'
                                    // restart values: cp_step_restart above)
                                    if (cp_can_start[!cp_h]) cp_start(!cp_h);
                                end
                            end else begin
                                cp_px <= cp_px + 8'd1;
                                cp_pxs <= cp_pxs + 16'(L.stride);
                                cp_c <= cp_pxs + 16'(L.stride);
                                cp_cb <= cp_cb + lc_scs;
                                cp_cbb <= cp_cbb + IAW'(lc_scs);
                                cp_cc <= cp_cbb + IAW'(lc_scs);
                                f_px_last <= nx_px_last;
                                dw_cr <= dw_c_wrap ? dw_cr_s - 8'(DW_K) : dw_cr_s;
                                if (dw_c_wrap) begin
                                    dw_c0 <= dw_c1;
                                    dw_c1 <= dw_c1 + DW_AW'(dw_cst);
                                end
                            end
                        end else begin
                            f_first <= 1'b0;
                            cp_wa <= cp_wa + 1'b1;
                            f_wa_last <= nx_wa_last;
                            // cp_last after the step: the flags' values set below
                            f_last <= L.im2col ? nx_wa_last
                                    : l_dw ? (dw_qlast ? nx_t_last && CW_PAR == 1 : f_t_last && nx_q_last)
                                    : f_ng_last ? lc_n_is1 && (f_kx_last ? nx_ky_last && lc_k_is1
                                                                         : f_ky_last && nx_kx_last)
                                    : f_ky_last && f_kx_last && nx_ng_last;
                            if (L.im2col) begin
                                // next step: lane 0's tap advances by Tn = qa*kc + ra
                                if (32'(cp_o0) + 32'(L.i2c_ra) >= 32'(L.kc)) begin
                                    cp_o0 <= 16'(32'(cp_o0) + 32'(L.i2c_ra) - 32'(L.kc));
                                    cp_r <= cp_r + L.i2c_qa + 16'd1;
                                    cp_rbl <= cp_rbl + lc_qpl + lc_pl;
                                end else begin
                                    cp_o0 <= cp_o0 + L.i2c_ra;
                                    cp_r <= cp_r + L.i2c_qa;
                                    cp_rbl <= cp_rbl + lc_qpl;
                                end
                                for (int i = 0; i < DG_TN; i++) begin
                                    logic wr, w0;
                                    wr = l_o[i] >= lc_kmr;
                                    w0 = l_o[0] >= lc_kmr;
                                    l_o[i] <= wr ? l_o[i] - lc_kmr : l_o[i] + L.i2c_ra;
                                    l_m[i] <= l_m[i] + LMW'(wr) - LMW'(w0);
                                    l_b[i] <= (wr && !w0) ? l_b[i] + BRW'(L.i2c_dq)
                                            : (!wr && w0) ? l_b[i] - BRW'(L.i2c_dq) : l_b[i];
                                end
                            end else if (l_dw) begin
                                if (!dw_qlast) begin
                                    cp_q <= cp_q + 8'd1;              // the other lane parity
                                    f_q_last <= nx_q_last;
                                end else begin
                                    cp_q <= 8'd0;
                                    f_q_last <= CW_PAR == 1;
                                    cp_t <= cp_t + 8'(CW_TPS);        // the next taps
                                    f_t_last <= nx_t_last;
                                end
                            end else if (f_ng_last) begin
                                cp_ng <= 16'd0;
                                cp_nrem <= lc_nin;
                                cp_hc <= IAW'(32'(cp_h) * IHALF);
                                if (f_kx_last) begin
                                    cp_kx <= 8'd0;
                                    cp_c <= cp_pxs;
                                    cp_cc <= cp_cbb;
                                    f_kx_last <= lc_k_is1;
                                    cp_ky <= cp_ky + 8'd1;
                                    cp_r <= cp_r + 16'd1;
                                    f_ky_last <= nx_ky_last;
                                end else begin
                                    cp_kx <= cp_kx + 8'd1;
                                    cp_c <= cp_c + 16'd1;
                                    cp_cc <= cp_cc + lc_cst;
                                    f_kx_last <= nx_kx_last;
                                end
                            end else begin
                                cp_ng <= cp_ng + 16'd1;
                                cp_hc <= cp_hc + IAW'(DG_TN);
                                cp_nrem <= cp_nrem - 16'(DG_TN);
                            end
                        end
                    end
                end
                CP_SUB: begin
                    if (tr_in_ready) begin
                        tr_push <= 1'b1;
                        // the pass's m-group cp_sg is the last (cp_sg + 1 == L.SG) exactly
                        // when no other follows it: !f_sub_more (a register, no compare)
                        tr_in <= {t_g[cp_h][0], t_glast[cp_h] && !f_sub_more, t_idx[cp_h],
                                  t_o0y[cp_h], t_o0x[cp_h], t_cy0[cp_h], t_cx0[cp_h], t_oh[cp_h],
                                  t_ow[cp_h], t_chy[cp_h], t_chw[cp_h], cp_sg};
                        cp_state <= CP_RUN;
                    end
                end
                default: cp_state <= CP_IDLE;
            endcase
        end
        // the conv step's n-group flag, with its conditions side by side (not under the
        // FSM's nested branches): the pixel's last step restarts it, a conv step advances it
        if (cp_step && (cp_last || (!L.im2col && !l_dw)))
            f_ng_last <= (cp_last || f_ng_last) ? lc_n_is1 : nx_ng_last;


        if (rst) begin
            cp_state <= CP_IDLE;
            inflight <= '0;
            cp_thr <= $bits(cp_thr)'(WBQ_DEPTH - 2);
            c1_v <= 1'b0;
            c2_v <= 1'b0;
        end
    end
`ifndef SYNTHESIS
    // the im2col lane tables against the division (in the run, kc unchanged for two cycles)
    logic [15:0] lc_kc_d;
    always_ff @(posedge clk) begin
        lc_kc_d <= L.kc;
        if (run && lc_kc_d == L.kc)
            for (int i = 0; i < DG_TN; i++) begin
                logic sm;
                sm = L.kc != 16'd0 && 32'(L.kc) < DG_TN;
                if (32'(lc_m0[i]) != (sm ? i / 32'(L.kc) : 0) || 32'(lc_o0[i]) != (sm ? i % 32'(L.kc) : i))
                    $error("dg_compute: lc_m0/lc_o0[%0d] %0d/%0d for kc %0d", i, lc_m0[i], lc_o0[i], L.kc);
            end
    end
    // padded dw banks: a fed lane's rotation has no bits below its step (the narrow pick)
    always_ff @(posedge clk)
        if (DW_PADDED && c2_v && l_dw)
            for (int m = 0; m < DG_TM; m++)
                for (int j = 0; j < CW_TPS; j++)
                    if (c2_ok && c2_dlane[m] && c2_jon[j] && ((c2_jrot[j] & ~DW_LMASK[m*DW_NBWL +: DW_NBWL]) != '0
                                                              || 32'(c2_jrot[j]) + m >= DW_NBW))
                        $error("dg_compute: dw lane %0d slot %0d rotation %0d: bits below the lane's step or past the row",
                               m, j, c2_jrot[j]);
    // the tile bits from the bitmap windows against the reads they replace, where they count
    always_ff @(posedge clk)
        if (c1_v && L.zero_halo) begin
            for (int t = 0; t < DW_NBK; t++)
                if (l_dw && c1_ten[t] && (32'(c1_hct[t % DW_K]) >= HW || c1_tbm[t] != bitmap[c1_tbit[t]]))
                    $error("dg_compute: tap %0d tile column %0d, window bit %0d, bitmap[%0d] %0d", t,
                           c1_hct[t % DW_K], c1_tbm[t], c1_tbit[t], bitmap[c1_tbit[t]]);
            if (DG_DEPTHWISE && c1_okp && c1_hchk && (32'(c1_hct[0]) >= HW || c1_tbm[0] != bitmap[c1_hbit]))
                $error("dg_compute: dense tile column %0d, window bit %0d, bitmap[%0d] %0d",
                       c1_hct[0], c1_tbm[0], c1_hbit, bitmap[c1_hbit]);
        end
    // the dense column byte register against the table it replaces
    always_ff @(posedge clk)
        if (run && cp_state == CP_RUN && cp_dense && !cp_res_only && !L_no_mac && cp_cc != colbyte[cp_h][cp_ci])
            $error("dg_compute: column %0d byte %0d, colbyte %0d", cp_c, cp_cc, colbyte[cp_h][cp_ci]);
    // im2col: the row base's bank register against the table
    always_ff @(posedge clk)
        if (run && cp_state == CP_RUN && L.im2col && !cp_res_only && !L_no_mac && cp_rbl != NBL'(h_rowbase))
            $error("dg_compute: row %0d base bank %0d, rowbase %0d", cp_r, cp_rbl, h_rowbase);
    // the bank-row offsets are zero in a step of any other layer kind than im2col
    always_ff @(posedge clk)
        if (c1_v && !L.im2col)
            for (int b = 0; b < NB; b++)
                if (c1_badd[b] != '0) $error("dg_compute: c1_badd[%0d] %0d outside im2col", b, c1_badd[b]);
    // the m-group pass's last flag against the compare it replaces
    always_ff @(posedge clk)
        if (run && cp_state == CP_SUB && !f_sub_more != (sg_next == L.SG))
            $error("dg_compute: m-group %0d of %0d, f_sub_more %0d", cp_sg, L.SG, f_sub_more);
    // the step's last flag against the flags it is made of
    wire cp_last_c = cp_res_only || L_no_mac || (L.im2col ? f_wa_last
                     : l_dw ? (dw_tlast && dw_qlast) : (f_ky_last && f_kx_last && f_ng_last));
    always_ff @(posedge clk)
        if (run && cp_state == CP_RUN && f_last != cp_last_c)
            $error("dg_compute: f_last %0d, the flags' %0d", f_last, cp_last_c);
    // the stall threshold against the sum it replaces
    always_ff @(posedge clk)
        if (run && !rst && cp_stall != (32'(wbq_count) + 32'(inflight) >= WBQ_DEPTH - 2))
            $error("dg_compute: stall %0d, wbq_count %0d, inflight %0d", cp_stall, wbq_count, inflight);
`endif
    wire unused_ok = &{1'b0, L, t_chy[0], cp_r[15:PW], cp_c[15:PW], dw_cst};
endmodule
`default_nettype wire
