`default_nettype none
// dg_gate: the gate / head unit of a network program (dgfpga.contract.program, docs/rtl.md).
//
// Started by dg_sequencer for an OP_GATE or OP_HEAD record (`start`, the record in `rec`).
// Gate: checks the record (reserved bits, fields, sections in their regions: the order of
// program.unpack_gate_record), then streams over the read master, in blob order, the bin
// table and the reciprocals (checked: BAD_GATE), the block input's SUMS (per bin and row,
// then whole for the totals), the spatial weights and bias, fc1 / m1 / o1 and fc2 / b2 of
// the channel gate, computing in int64 exactly as dgfpga.numerics.gates:
//   P = (S*R + 2^(RB-F-1)) >>> (RB-F);  L = bs + sum ws*Ppad;  A = sum w1*Pt;
//   h = clamp((A*m1 + o1 + 2^(s-1)) >>> s, 0, HMAX);  logit = b2 + sum w2*h.
// Every parameter check happens before anything is written. Then it writes the masks and
// the block's work lists (formats.encode_work_list bytes) over the write master and hands
// (nt, nc) to the sequencer. RUN_FLAGS.DENSE: every tile and channel on, no evaluation.
// Gate-2 (OP_GATE2, a Bottleneck block's mask_c2; docs/formats.md): the record checks, R(H*W)
// (checked), the gate record's masks at in_mask_offset (padding bits: BAD_GATE at that word,
// reported after the parameter checks), conv1's compact sums over the active tiles (one
// stream per run of consecutive active tiles) accumulated per compact channel, the pooled
// totals Pt in channel order (0 for inactive channels), then the SAME channel-gate datapath
// as the gate record (fc1 -> hidden -> fc2 streams, `cg_*` fields), and three writes: the
// mask_c2 bitmap, conv2's out-channel list, conv3's in-channel list; `nc2` to the sequencer.
// Head: the whole-map channel sums of SUMS (int64), logits = bias + W . pooled (int64),
// written to WORK, then the per-record cycle log (dg_sequencer's log RAM, read a beat ahead
// through cyc_ra / cyc_q; this record's own entry = `rec_cycles` when the log write starts).
// Streams consume one AXI beat per cycle at most (a beat holds AB/esize elements; a
// segment of a beat that crosses a row of a matrix takes one more cycle; a segment holds at
// most GL = min(AB/2, Tn) elements); the loops over on-chip data (pooling, the spatial 3x3)
// take GL channels per cycle.
module dg_gate
    import dg_pkg::*;
(
    input  wire                         clk,
    input  wire                         rst,
    input  wire                         start,        // pulse: run the record in `rec`
    input  wire                         is_head,
    input  wire [DG_DESC_WORDS*32-1:0]  rec,
    input  wire                         dense,        // RUN_FLAGS.DENSE
    input  wire [63:0]                  a_weight_base,
    input  wire [31:0]                  a_weight_bytes,
    input  wire [63:0]                  a_work_base,
    input  wire [31:0]                  a_work_bytes,
    input  wire [63:0]                  a_sums_base,
    input  wire [31:0]                  a_sums_bytes,
    input  wire [31:0]                  a_layer_count,
    input  wire [31:0]                  rec_cycles,   // cycles of this record so far
    output wire [23:0]                  cyc_ra,       // cycle-log row (beat) read next
    input  wire [DG_AXI_DATA_BITS-1:0]  cyc_q,        // row cyc_ra of the cycle before
    // read master
    output logic                        rcmd_valid,
    output logic [63:0]                 rcmd_addr,
    output logic [23:0]                 rcmd_beats,
    input  wire                         rcmd_ready,
    input  wire [DG_AXI_DATA_BITS-1:0]  rd_data,
    input  wire                         rd_valid,
    output logic                        rd_ready,
    // write master
    output logic                        wcmd_valid,
    output logic [63:0]                 wcmd_addr,
    output logic [23:0]                 wcmd_beats,
    input  wire                         wcmd_ready,
    output logic [DG_AXI_DATA_BITS-1:0] wd_data,
    output logic [AB-1:0]               wd_strb,
    output logic                        wd_valid,
    input  wire                         wd_ready,
    // result
    output logic                        done,         // pulse
    output logic [7:0]                  err_code,     // valid with done (0 = ok)
    output logic [15:0]                 err_entry,
    output logic [15:0]                 nt,           // active tiles / channels of the gate
    output logic [15:0]                 nc,
    output logic [15:0]                 nc2           // active channels of a gate-2 record
);
`include "dg_fields.svh"
    if (AB < 8) begin : g_chk_ab
        $error("dg_gate: the int64 parameters need an AXI width of at least 64 bits");
    end
    localparam int MAXG = DG_MAX_GRID;
    localparam int NCELL = MAXG * MAXG;
    localparam int MAXC = DG_MAX_IN_CHANNELS;
    localparam int MAXO = DG_MAX_OUT_CHANNELS;
    localparam int MAXL = (MAXO > DG_MAX_CLASSES) ? MAXO : DG_MAX_CLASSES;
    localparam int NCELLP = 32 * ((NCELL + 31) / 32) + 8 * AB;     // bit vectors padded for word reads
    localparam int SH = DG_GATE_RECIP_BITS - DG_GATE_FRAC_BITS;
    localparam logic signed [63:0] LIM = 64'(DG_GATE_BIAS_LIMIT);
    // hidden units: v = A*m1 + o1 + 2^(s-1) is shifted by whole bytes in stage G, by the rest
    // (< 8 bits) in stage H; clamp(v >>> s, 0, HMAX = 2^HMB - 1) needs only the sign, the
    // HMB + 7 bits left after the byte shift and whether a bit above them is set
    localparam int HMB = $clog2(DG_GATE_HIDDEN_MAX + 1);
    localparam int HTW = HMB + 7;
    if ((DG_GATE_HIDDEN_MAX & (DG_GATE_HIDDEN_MAX + 1)) != 0) begin : g_chk_hmax
        $error("dg_gate: the hidden units' clamp needs HMAX = 2^k - 1");
    end
    // pooled value bits: an 8-bit map pools to |P| <= 255 * 2^F; the reference admits |P| < 2^17
    localparam int PVW = DG_ACT_BITS + DG_GATE_FRAC_BITS + 2;
    // the spatial 3x3: a kernel row's sum adds <= MAXC products int16 x P (|P| < 2^(PVW-1)):
    // SKW signed bits; a cell logit is bs (|bs| < 2^46, checked) plus three of them: LGW bits
    // (issue 16: the adds and the cell logits' memory at these widths, not int64; the sums
    // and so the decisions are the same)
    localparam int SKW = PVW + 16 + $clog2(DG_MAX_IN_CHANNELS);
    localparam int LGW = ((SKW + 1 > 47) ? SKW + 1 : 47) + 1;
    // Multiplier operand widths (issue 16: DSP48E2 count): each product is exact at these
    // widths, so the results equal the int64 reference bit for bit.
    // SW: a sum of SUMS entries (bins, totals, gate-2 totals, head) adds <= MAXG^2 int32 tile
    // sums (st_h, st_w <= max_grid), |S| <= 2^31 * MAXG^2.
    localparam int SW = 32 + 2 * $clog2(MAXG) + 1;
    // AW: an fc1 row sum adds <= MAXC products int16 x PVW-bit P, |A| <= MAXC * 2^15 * 2^17.
    localparam int AW = 34 + $clog2(MAXC);
    localparam int RW = DG_GATE_RECIP_BITS + 1;                    // R(n) <= 2^RB (checked)
    // GL, the gate unit's lanes (issue 16: its multipliers and banks do not grow with Tn): the
    // int16 elements of one AXI beat (AB/2, the fc1 / fc2 / spatial-weight streams), at most Tn
    // (EngineConfig.gate_lanes, through the generated contract). Every lane-banked memory has GL
    // banks, a stream segment holds at most GL elements, and the on-chip loops (pool, gate-2
    // pool, spatial 3x3) take GL channels per cycle.
    localparam int GL = DG_GATE_LANES;
    localparam int GLL = $clog2(GL);
    if (SW < PVW || SW < 17) begin : g_chk_sw
        $error("dg_gate: the shared row multiplier needs SW >= PVW and SW >= 17");
    end

    // ------------------------------------------------------------------ record fields
`define DG_G(F) `DG_REC(rec, GATE, F)
`define DG_H(F) `DG_REC(rec, HEAD, F)
    wire [15:0] g_in_c = 16'(`DG_G(IN_C));
    wire [15:0] g_out_c = 16'(`DG_G(OUT_C));
    wire [15:0] g_hidden = 16'(`DG_G(HIDDEN));
    wire [5:0]  g_shift = 6'(`DG_G(H_SHIFT));
    wire [7:0]  g_st_h = 8'(`DG_G(ST_H));
    wire [7:0]  g_st_w = 8'(`DG_G(ST_W));
    wire [7:0]  g_gh = 8'(`DG_G(GH));
    wire [7:0]  g_gw = 8'(`DG_G(GW));
    wire        g_res_list = `DG_G(RES_LIST);
    wire [15:0] h_in_c = 16'(`DG_H(IN_C));
    wire [15:0] h_classes = 16'(`DG_H(CLASSES));
    wire [7:0]  h_st_h = 8'(`DG_H(ST_H));
    wire [7:0]  h_st_w = 8'(`DG_H(ST_W));
`define DG_G2(F) `DG_REC(rec, GATE2, F)
    logic       is_g2;                // registered from the record (record pipeline below)
    wire [15:0] g2_in_c = 16'(`DG_G2(IN_C));
    wire [15:0] g2_out_c = 16'(`DG_G2(OUT_C));
    wire [15:0] g2_hidden = 16'(`DG_G2(HIDDEN));
    wire [5:0]  g2_shift = 6'(`DG_G2(H_SHIFT));
    wire [7:0]  g2_st_h = 8'(`DG_G2(ST_H));
    wire [7:0]  g2_st_w = 8'(`DG_G2(ST_W));
    // the channel gate's fields: the gate record's, or the gate-2 record's (one datapath)
    wire [15:0] cg_in_c = is_g2 ? g2_in_c : g_in_c;
    wire [15:0] cg_out_c = is_g2 ? g2_out_c : g_out_c;
    wire [15:0] cg_hidden = is_g2 ? g2_hidden : g_hidden;
    wire [5:0]  cg_shift = is_g2 ? g2_shift : g_shift;
    // registered (the record is held): the hidden layer's shift s and its rounding 2^(s-1)
    logic [5:0] cg_sh;
    logic signed [63:0] cg_rnd;
    logic [63:0] cg_hm;               // v's bits from HTW + 8 (s div 8) on (0 past bit 63)
    always_ff @(posedge clk) begin
        cg_sh <= cg_shift;
        cg_hm <= ~64'd0 << (32'(HTW) + 32'({cg_shift[5:3], 3'b000}));
        cg_rnd <= 64'sd1 <<< (cg_shift - 6'd1);
    end

    // reserved bits: every record bit no field covers
    function automatic logic [DG_DESC_WORDS*32-1:0] gate_bits();
        logic [DG_DESC_WORDS*32-1:0] u;
        u = '0;
`define DG_USE(F) `DG_REC(u, GATE, F) = '1;
        `DG_USE(MAGIC) `DG_USE(VERSION) `DG_USE(OP) `DG_USE(IN_C) `DG_USE(OUT_C) `DG_USE(HIDDEN)
        `DG_USE(H_SHIFT) `DG_USE(ST_H) `DG_USE(ST_W) `DG_USE(GH) `DG_USE(GW) `DG_USE(RES_LIST)
        `DG_USE(SUMS_OFFSET) `DG_USE(PARAM_OFFSET) `DG_USE(MASK_OFFSET) `DG_USE(C1_TILES_OFFSET)
        `DG_USE(C1_OUT_CH_OFFSET) `DG_USE(C2_TILES_OFFSET) `DG_USE(C2_RES_TILES_OFFSET)
        `DG_USE(C2_IN_CH_OFFSET) `DG_USE(C2_BITMAP_OFFSET)
`undef DG_USE
        return u;
    endfunction
    function automatic logic [DG_DESC_WORDS*32-1:0] head_bits();
        logic [DG_DESC_WORDS*32-1:0] u;
        u = '0;
`define DG_USE(F) `DG_REC(u, HEAD, F) = '1;
        `DG_USE(MAGIC) `DG_USE(VERSION) `DG_USE(OP) `DG_USE(IN_C) `DG_USE(CLASSES) `DG_USE(ST_H)
        `DG_USE(ST_W) `DG_USE(SUMS_OFFSET) `DG_USE(PARAM_OFFSET) `DG_USE(LOGITS_OFFSET)
        `DG_USE(LOG_OFFSET)
`undef DG_USE
        return u;
    endfunction
    function automatic logic [DG_DESC_WORDS*32-1:0] gate2_bits();
        logic [DG_DESC_WORDS*32-1:0] u;
        u = '0;
`define DG_USE(F) `DG_REC(u, GATE2, F) = '1;
        `DG_USE(MAGIC) `DG_USE(VERSION) `DG_USE(OP) `DG_USE(IN_C) `DG_USE(OUT_C) `DG_USE(HIDDEN)
        `DG_USE(H_SHIFT) `DG_USE(ST_H) `DG_USE(ST_W) `DG_USE(SUMS_OFFSET) `DG_USE(PARAM_OFFSET)
        `DG_USE(IN_MASK_OFFSET) `DG_USE(MASK_OFFSET) `DG_USE(C2_OUT_CH_OFFSET) `DG_USE(C3_IN_CH_OFFSET)
`undef DG_USE
        return u;
    endfunction
    localparam logic [DG_DESC_WORDS*32-1:0] GATE_BITS = gate_bits();
    localparam logic [DG_DESC_WORDS*32-1:0] GATE2_BITS = gate2_bits();
    localparam logic [DG_DESC_WORDS*32-1:0] HEAD_BITS = head_bits();

    function automatic logic [63:0] up(input logic [63:0] n);
        return (n + 64'(AB - 1)) & ~64'(AB - 1);
    endfunction
    function automatic logic [63:0] bm_bytes(input logic [63:0] n);   // formats.bitmap_bytes
        return 64'd4 * ((n + 64'd31) >> 5);
    endfunction

    // ------------------------------------------------------------------ record pipeline
    // The sequencer holds `rec` (and is_head) for the whole record, so what derives from it is
    // computed by free-running registers, a few LUT levels per stage (issue 16: <= 8 levels
    // between registers): the section sizes, the parameter layouts (a ripple of one add per
    // section and cycle), the check conditions and their first failing one (two steps: groups of
    // 8, then the groups). G_CHK waits CK_LAT cycles after the start before it reads them.
    localparam int NW = 48;                                       // section arithmetic (fields <= 16 bits)
    localparam int CK_LAT = DG_GATE_P_COUNT + 7;
    // stage 1: products of fields, per-section element counts
    logic [31:0] q_cnt [DG_GATE_P_COUNT];
    logic [31:0] q_cnt2 [DG_GATE2_P_COUNT];
    logic [15:0] q_gn, q_sthw, gg_n;
    logic [31:0] q_hcls;
    // the record kind's sum-tile grid and input channels (issue 16: one multiplier per product
    // for the three kinds; only the record's own kind's values are used)
    wire [7:0] k_st_h = is_head ? h_st_h : is_g2 ? g2_st_h : g_st_h;
    wire [7:0] k_st_w = is_head ? h_st_w : is_g2 ? g2_st_w : g_st_w;
    wire [15:0] k_in_c = is_head ? h_in_c : cg_in_c;
    always_ff @(posedge clk) begin
        // (the gate and gate-2 counts from the channel gate's fields: their products shared)
        for (int s = 0; s < DG_GATE_P_COUNT; s++)
            q_cnt[s] <= 32'(dg_gate_param_count(s, 32'(cg_in_c), 32'(cg_out_c), 32'(cg_hidden), 32'(g_gh), 32'(g_gw)));
        for (int s = 0; s < DG_GATE2_P_COUNT; s++)
            q_cnt2[s] <= 32'(dg_gate2_param_count(s, 32'(cg_in_c), 32'(cg_out_c), 32'(cg_hidden)));
        q_gn <= 16'(g_gh) * 16'(g_gw);
        gg_n <= 16'(g_gh) + 16'(g_gw);
        q_sthw <= 16'(k_st_h) * 16'(k_st_w);
        q_hcls <= 32'(h_in_c) * 32'(h_classes);
        is_g2 <= !is_head && 32'(`DG_G2(OP)) == DG_OP_GATE2;
    end
    wire [15:0] q_g2n = q_sthw;       // gate-2: conv1's tiles
    wire [15:0] q_gsthw = q_sthw;     // gate, head: the SUMS tiles
    wire [15:0] q_hsthw = q_sthw;
    // stage 2: section sizes in bytes (a parameter section rounded up to the AXI width: the next
    // starts aligned, program.gate_param_layout)
    logic [NW-1:0] q_usz [DG_GATE_P_COUNT];
    logic [NW-1:0] q_usz2 [DG_GATE2_P_COUNT];
    logic [NW-1:0] nb_sums, nb_gmask, nb_g2mask, nb_gtl, nb_gbm, nb_hpar;
    logic [63:0] g_n, g2_n;
    logic [31:0] h_bias_off;          // (streamed once checked inside the parameter region)
    logic [31:0] g2_wt;                                          // tile bitmap words gate-2 reads
    logic [31:0] g_nwt;                                          // tile bitmap words of the gate record
    always_ff @(posedge clk) begin
        for (int s = 0; s < DG_GATE_P_COUNT; s++) begin
            int unsigned eb;
            case (s)
                DG_GATE_P_BINS: eb = DG_GATE_P_BINS_ELEM_BYTES;
                DG_GATE_P_RECIP: eb = DG_GATE_P_RECIP_ELEM_BYTES;
                DG_GATE_P_WS: eb = DG_GATE_P_WS_ELEM_BYTES;
                DG_GATE_P_BS: eb = DG_GATE_P_BS_ELEM_BYTES;
                DG_GATE_P_W1: eb = DG_GATE_P_W1_ELEM_BYTES;
                DG_GATE_P_M1: eb = DG_GATE_P_M1_ELEM_BYTES;
                DG_GATE_P_O1: eb = DG_GATE_P_O1_ELEM_BYTES;
                DG_GATE_P_W2: eb = DG_GATE_P_W2_ELEM_BYTES;
                default: eb = DG_GATE_P_B2_ELEM_BYTES;
            endcase
            q_usz[s] <= NW'(up(64'(eb) * 64'(q_cnt[s])));
        end
        for (int s = 0; s < DG_GATE2_P_COUNT; s++) begin
            int unsigned eb;
            case (s)
                DG_GATE2_P_RECIP: eb = DG_GATE2_P_RECIP_ELEM_BYTES;
                DG_GATE2_P_W1: eb = DG_GATE2_P_W1_ELEM_BYTES;
                DG_GATE2_P_M1: eb = DG_GATE2_P_M1_ELEM_BYTES;
                DG_GATE2_P_O1: eb = DG_GATE2_P_O1_ELEM_BYTES;
                DG_GATE2_P_W2: eb = DG_GATE2_P_W2_ELEM_BYTES;
                default: eb = DG_GATE2_P_B2_ELEM_BYTES;
            endcase
            q_usz2[s] <= NW'(up(64'(eb) * 64'(q_cnt2[s])));
        end
        g_n <= 64'(q_gn);
        g2_n <= 64'(q_g2n);
        g2_wt <= 32'((32'(q_g2n) + 32'd31) >> 5);
        g_nwt <= 32'((32'(q_gn) + 32'd31) >> 5);
        h_bias_off <= 32'(up(64'(q_hcls)));
        nb_sums <= NW'(64'(q_sthw) * 64'(k_in_c) * 64'(DG_SUM_BYTES));   // (the record's kind)
        nb_gmask <= NW'(bm_bytes(64'(q_gn)) + bm_bytes(64'(g_out_c)));
        nb_g2mask <= NW'(bm_bytes(64'(q_g2n)) + bm_bytes(64'(g2_in_c)));
        nb_gtl <= NW'(64'd2 * 64'(q_gn));
        nb_gbm <= NW'(bm_bytes(64'(q_gn)));
        nb_hpar <= NW'(up(64'(q_hcls)) + 64'd4 * 64'(h_classes));
    end
    // the layouts: po[s] = sum of the sizes before s (every section starts aligned); one add
    // per section and cycle, settled DG_GATE_P_COUNT cycles after the sizes
    logic [NW-1:0] po_r [DG_GATE_P_COUNT];
    logic [NW-1:0] po2_r [DG_GATE2_P_COUNT];
    logic [NW-1:0] p_nbytes, p2_nbytes;
    always_ff @(posedge clk) begin
        po_r[0] <= '0;
        for (int s = 1; s < DG_GATE_P_COUNT; s++) po_r[s] <= po_r[s - 1] + q_usz[s - 1];
        p_nbytes <= po_r[DG_GATE_P_COUNT - 1] + q_usz[DG_GATE_P_COUNT - 1];
        po2_r[0] <= '0;
        for (int s = 1; s < DG_GATE2_P_COUNT; s++) po2_r[s] <= po2_r[s - 1] + q_usz2[s - 1];
        p2_nbytes <= po2_r[DG_GATE2_P_COUNT - 1] + q_usz2[DG_GATE2_P_COUNT - 1];
    end
    wire [63:0] po [DG_GATE_P_COUNT];
    wire [63:0] po2 [DG_GATE2_P_COUNT];
    for (genvar s = 0; s < DG_GATE_P_COUNT; s++) begin : g_po
        assign po[s] = 64'(po_r[s]);
    end
    for (genvar s = 0; s < DG_GATE2_P_COUNT; s++) begin : g_po2
        assign po2[s] = 64'(po2_r[s]);
    end

    // ------------------------------------------------------------------ record checks
    // program.unpack_gate_record / unpack_gate2_record / unpack_head_record order: reserved bits
    // (word order), fields, then every section aligned and inside its region (densest case).
    // One condition per slot, each with its (code, entry); only the record's own kind's slots
    // can be set, so the first set slot is the first failing check of that kind.
    localparam int NCOND = 96;
    localparam int NGRP = NCOND / 8;
    logic [NCOND-1:0] cq_bad;
    logic [7:0] cq_code [NCOND];
    logic [15:0] cq_entry [NCOND];
    logic [DG_DESC_WORDS-1:0] q_stray;                            // stage 2: a reserved bit set, per word
    // The "inside its region" tests that several kinds share (only the record's own kind's
    // slots can be set): one add and compare each, its offset and size selected by the kind
    // into registers first (issue 16: no select in front of the adds; the sizes settle a cycle
    // later, within G_CHK's wait): the SUMS and the parameter sections of the three kinds,
    // and the WORK sections the record layouts put in the same word (head LOG / gate-2
    // IN_MASK, gate MASK / gate-2 MASK, gate C1_TILES / gate-2 C2_OUT_CH, gate C1_OUT_CH /
    // gate-2 C3_IN_CH) or that no other kind's test pairs with (head LOGITS / gate C2_TILES)
    wire [31:0] sums_off = is_head ? 32'(`DG_H(SUMS_OFFSET)) : is_g2 ? 32'(`DG_G2(SUMS_OFFSET))
                                                                  : 32'(`DG_G(SUMS_OFFSET));
    wire [31:0] par_off = is_head ? 32'(`DG_H(PARAM_OFFSET)) : is_g2 ? 32'(`DG_G2(PARAM_OFFSET))
                                                                 : 32'(`DG_G(PARAM_OFFSET));
    localparam int NSH = 7;
    logic [31:0] sh_off [NSH];
    logic [NW-1:0] sh_nb [NSH];
    always_ff @(posedge clk) begin
        logic gt, hd;
        gt = !is_head && !is_g2;
        hd = is_head;
        sh_off[0] <= sums_off;        // (its size: nb_sums, the record kind's already)
        sh_nb[0] <= '0;
        sh_off[1] <= par_off;
        sh_nb[1] <= hd ? nb_hpar : is_g2 ? p2_nbytes : p_nbytes;
        sh_off[2] <= 32'(hd ? `DG_H(LOG_OFFSET) : `DG_G2(IN_MASK_OFFSET));
        sh_nb[2] <= hd ? NW'(64'd4 * 64'(a_layer_count)) : nb_g2mask;
        sh_off[3] <= 32'(gt ? `DG_G(MASK_OFFSET) : `DG_G2(MASK_OFFSET));
        sh_nb[3] <= gt ? nb_gmask : NW'(bm_bytes(64'(g2_out_c)));
        sh_off[4] <= 32'(gt ? `DG_G(C1_TILES_OFFSET) : `DG_G2(C2_OUT_CH_OFFSET));
        sh_nb[4] <= gt ? nb_gtl : NW'(64'd2 * 64'(g2_out_c));
        sh_off[5] <= 32'(gt ? `DG_G(C1_OUT_CH_OFFSET) : `DG_G2(C3_IN_CH_OFFSET));
        sh_nb[5] <= NW'(64'd2 * 64'(gt ? g_out_c : g2_out_c));
        sh_off[6] <= 32'(hd ? `DG_H(LOGITS_OFFSET) : `DG_G(C2_TILES_OFFSET));
        sh_nb[6] <= hd ? NW'(64'd8 * 64'(h_classes)) : nb_gtl;
    end
    logic [NSH-1:0] sh_out;           // the section ends past its region
    always_comb begin
        for (int i = 0; i < NSH; i++) begin
            logic [31:0] rb;
            rb = (i == 0) ? a_sums_bytes : (i == 1) ? a_weight_bytes : a_work_bytes;
            sh_out[i] = 64'(sh_off[i]) + 64'((i == 0) ? nb_sums : sh_nb[i]) > 64'(rb);
        end
    end
    always_ff @(posedge clk) begin
        logic [DG_DESC_WORDS*32-1:0] stray;
        stray = rec & ~(is_head ? HEAD_BITS : is_g2 ? GATE2_BITS : GATE_BITS);
        for (int w = 0; w < DG_DESC_WORDS; w++) q_stray[w] <= stray[w * 32 +: 32] != 0;
    end
    always_ff @(posedge clk) begin
        int n;
        logic gt, g2, hd;
        gt = !is_head && !is_g2;
        g2 = is_g2;
        hd = is_head;
        n = 0;
        for (int i = 0; i < NCOND; i++) begin
            cq_bad[i] <= 1'b0;
            cq_code[i] <= 8'd0;
            cq_entry[i] <= 16'd0;
        end
`define DG_C(kind, cond, code, entry) \
        cq_bad[n] <= (kind) && (cond); cq_code[n] <= 8'(code); cq_entry[n] <= 16'(entry); n = n + 1;
`define DG_SEC(kind, P, F, region_bytes, nbytes) \
        `DG_C(kind, 32'(`DG_REC(rec, P, F)) % AB != 0, DG_ERR_BAD_OFFSET, DG_``P``_``F``_WORD) \
        `DG_C(kind, 64'(`DG_REC(rec, P, F)) + 64'(nbytes) > 64'(region_bytes), DG_ERR_BAD_OFFSET, DG_``P``_``F``_WORD)
// (a section whose "inside its region" test is shared with another kind's, rng below)
`define DG_SECR(kind, P, F, rng) \
        `DG_C(kind, 32'(`DG_REC(rec, P, F)) % AB != 0, DG_ERR_BAD_OFFSET, DG_``P``_``F``_WORD) \
        `DG_C(kind, rng, DG_ERR_BAD_OFFSET, DG_``P``_``F``_WORD)
        for (int w = 0; w < DG_DESC_WORDS; w++) begin
            cq_bad[w] <= q_stray[w];
            cq_code[w] <= (gt && w == DG_GATE_FLAGS_WORD) ? DG_ERR_BAD_FLAGS : DG_ERR_BAD_GATE;
            cq_entry[w] <= 16'(w);
        end
        n = DG_DESC_WORDS;
        // gate-2 (program.validate_gate2_record: fields in word order, then the sections)
        `DG_C(g2, g2_in_c == 0 || 32'(g2_in_c) > MAXC, DG_GATE2_IN_C_ERR, DG_GATE2_IN_C_WORD)
        `DG_C(g2, g2_out_c == 0 || 32'(g2_out_c) > MAXO, DG_GATE2_OUT_C_ERR, DG_GATE2_OUT_C_WORD)
        `DG_C(g2, g2_hidden == 0 || g2_hidden > g2_in_c, DG_GATE2_HIDDEN_ERR, DG_GATE2_HIDDEN_WORD)
        `DG_C(g2, g2_shift == 0 || 32'(g2_shift) > DG_GATE_SHIFT_MAX, DG_GATE2_H_SHIFT_ERR, DG_GATE2_H_SHIFT_WORD)
        `DG_C(g2, g2_st_h == 0 || 32'(g2_st_h) > MAXG, DG_GATE2_ST_H_ERR, DG_GATE2_ST_H_WORD)
        `DG_C(g2, g2_st_w == 0 || 32'(g2_st_w) > MAXG, DG_GATE2_ST_W_ERR, DG_GATE2_ST_W_WORD)
        `DG_SECR(g2, GATE2, SUMS_OFFSET, sh_out[0])
        `DG_SECR(g2, GATE2, PARAM_OFFSET, sh_out[1])
        `DG_SECR(g2, GATE2, IN_MASK_OFFSET, sh_out[2])
        `DG_SECR(g2, GATE2, MASK_OFFSET, sh_out[3])
        `DG_SECR(g2, GATE2, C2_OUT_CH_OFFSET, sh_out[4])
        `DG_SECR(g2, GATE2, C3_IN_CH_OFFSET, sh_out[5])
        // gate
        `DG_C(gt, g_in_c == 0 || 32'(g_in_c) > MAXC, DG_GATE_IN_C_ERR, DG_GATE_IN_C_WORD)
        `DG_C(gt, g_out_c == 0 || 32'(g_out_c) > MAXO, DG_GATE_OUT_C_ERR, DG_GATE_OUT_C_WORD)
        `DG_C(gt, g_hidden == 0 || g_hidden > g_in_c, DG_GATE_HIDDEN_ERR, DG_GATE_HIDDEN_WORD)
        `DG_C(gt, g_shift == 0 || 32'(g_shift) > DG_GATE_SHIFT_MAX, DG_GATE_H_SHIFT_ERR, DG_GATE_H_SHIFT_WORD)
        `DG_C(gt, g_st_h == 0 || 32'(g_st_h) > MAXG, DG_GATE_ST_H_ERR, DG_GATE_ST_H_WORD)
        `DG_C(gt, g_st_w == 0 || 32'(g_st_w) > MAXG, DG_GATE_ST_W_ERR, DG_GATE_ST_W_WORD)
        `DG_C(gt, g_gh == 0 || 32'(g_gh) > MAXG, DG_GATE_GH_ERR, DG_GATE_GH_WORD)
        `DG_C(gt, g_gw == 0 || 32'(g_gw) > MAXG, DG_GATE_GW_ERR, DG_GATE_GW_WORD)
        `DG_C(gt, !g_res_list && `DG_G(C2_RES_TILES_OFFSET) != 0, DG_GATE_C2_RES_TILES_OFFSET_ERR,
              DG_GATE_C2_RES_TILES_OFFSET_WORD)
        `DG_SECR(gt, GATE, SUMS_OFFSET, sh_out[0])
        `DG_SECR(gt, GATE, PARAM_OFFSET, sh_out[1])
        `DG_SECR(gt, GATE, MASK_OFFSET, sh_out[3])
        `DG_SECR(gt, GATE, C1_TILES_OFFSET, sh_out[4])
        `DG_SECR(gt, GATE, C1_OUT_CH_OFFSET, sh_out[5])
        `DG_SECR(gt, GATE, C2_TILES_OFFSET, sh_out[6])
        `DG_SEC(gt && g_res_list, GATE, C2_RES_TILES_OFFSET, a_work_bytes, nb_gtl)
        `DG_SEC(gt, GATE, C2_IN_CH_OFFSET, a_work_bytes, 64'd2 * 64'(g_out_c))
        `DG_SEC(gt, GATE, C2_BITMAP_OFFSET, a_work_bytes, nb_gbm)
        // head
        `DG_C(hd, h_in_c == 0 || 32'(h_in_c) > MAXC, DG_HEAD_IN_C_ERR, DG_HEAD_IN_C_WORD)
        `DG_C(hd, h_classes == 0 || 32'(h_classes) > DG_MAX_CLASSES, DG_HEAD_CLASSES_ERR, DG_HEAD_CLASSES_WORD)
        `DG_C(hd, h_st_h == 0 || 32'(h_st_h) > MAXG, DG_HEAD_ST_H_ERR, DG_HEAD_ST_H_WORD)
        `DG_C(hd, h_st_w == 0 || 32'(h_st_w) > MAXG, DG_HEAD_ST_W_ERR, DG_HEAD_ST_W_WORD)
        `DG_SECR(hd, HEAD, SUMS_OFFSET, sh_out[0])
        `DG_SECR(hd, HEAD, PARAM_OFFSET, sh_out[1])
        `DG_SECR(hd, HEAD, LOGITS_OFFSET, sh_out[6])
        `DG_SECR(hd, HEAD, LOG_OFFSET, sh_out[2])
`undef DG_SECR
`undef DG_SEC
`undef DG_C
    end
    // the first set slot: per group of 8, then over the groups
    logic [NGRP-1:0] gq_any;
    logic [7:0] gq_code [NGRP];
    logic [15:0] gq_entry [NGRP];
    logic [7:0] chk_code;
    logic [15:0] chk_entry;
    always_ff @(posedge clk) begin
        for (int g = 0; g < NGRP; g++) begin
            gq_any[g] <= |cq_bad[g * 8 +: 8];
            gq_code[g] <= 8'd0;
            gq_entry[g] <= 16'd0;
            for (int i = 7; i >= 0; i--) begin
                if (cq_bad[g * 8 + i]) begin
                    gq_code[g] <= cq_code[g * 8 + i];
                    gq_entry[g] <= cq_entry[g * 8 + i];
                end
            end
        end
        chk_code <= 8'd0;
        chk_entry <= 16'd0;
        for (int g = NGRP - 1; g >= 0; g--) begin
            if (gq_any[g]) begin
                chk_code <= gq_code[g];
                chk_entry <= gq_entry[g];
            end
        end
    end

    // ------------------------------------------------------------------ state
    typedef enum logic [4:0] {
        G_IDLE, G_CHK, G_NEXT, G_RCMD, G_RDATA, G_BCHK, G_POOL, G_SPAT, G_SDRAIN, G_WJOB, G_WCMD,
        G_WDATA, G_FAULT, G_DONE, G_TSCAN, G_POOL2, G_SP1, G_SP2, G_SP3
    } gstate_t;
    gstate_t st;
    typedef enum logic [3:0] {
        K_BINS, K_RECIP, K_SUMS, K_WS, K_BS, K_W1, K_M1, K_O1, K_W2, K_B2, K_HW, K_HB, K_MASK
    } kind_t;
    // phases (G_NEXT dispatches on `step`)
    localparam logic [4:0] S_BINS = 0, S_BCHK = 1, S_RECIP = 2, S_BINSUM = 3, S_TOT = 4, S_POOLT = 5,
        S_WS = 6, S_BS = 7, S_W1 = 9, S_M1 = 10, S_O1 = 11, S_W2 = 12, S_B2 = 13,
        S_WRITE = 14, S_DENSE = 15, S_HSUMS = 16, S_HW = 17, S_HB = 18, S_HWRITE = 19,
        S2_RECIP = 20, S2_MASK = 21, S2_SUMS = 22, S2_POOL = 23;
    logic [4:0] step;
    logic [3:0] job;                  // write job
    // stream
    kind_t       s_kind;
    logic [63:0] s_addr;              // byte address of the first element
    logic [31:0] s_n, s_e;            // elements, consumed
    logic [1:0]  s_esz;               // log2 element bytes
    logic [31:0] s_rowlen, s_row, s_col;
    logic [31:0] s_rl, s_nl;          // elements left in the row, in the stream
    logic [15:0] s_lp;                // element lane within the beat
    logic        s_bad;
    logic [15:0] s_bad_at;
    logic signed [63:0] racc;         // row accumulator (w1, w2, head W)
    // stream set-up (G_SP1..3): addr = base + off + 4 * ((mx * my + mz) * mw), n = na * nb
    // (off < 2^32: every stream's section was checked inside its region, whose size is 32 bits,
    // before the first stream; issue 16: the offset select at 32 bits)
    logic [63:0] sp_base, sp_a;
    logic [31:0] sp_off;
    logic [15:0] sp_mx, sp_my, sp_mz, sp_mw;
    // (every count and index is a product of <= 16-bit fields of a checked record: 17 bits)
    logic [16:0] sp_na, sp_nb, sp_t1;
    logic [31:0] sp_t2;
    // one multiplier for the stream's element count (G_SP1) and its row offset (G_SP2)
    wire [16:0] sp_ma = (st == G_SP2) ? sp_t1 : sp_na;
    wire [16:0] sp_mb = (st == G_SP2) ? 17'(sp_mw) : sp_nb;
    wire [31:0] sp_prod = 32'(sp_ma) * 32'(sp_mb);
    logic [23:0] s_beats;
    // stream pipeline: R (G_RDATA: a segment of the beat) -> E (the beat, registered) -> F (its
    // elements: checks, memory writes, products) -> G (row sums; hidden: scaled + offset) ->
    // H (hidden: shift, clamp, write). G_NEXT waits until it is empty.
    localparam int SEGW = $clog2(AB + 1);
    logic [SEGW:0] s_bl, s_cap;       // stream: elements left in the beat; lanes of the kind
    // lanes a kind can fill in one cycle: its elements per beat, at most GL for the streams into
    // or out of the lane-banked memories (the logic of a kind exists only for its lanes)
    localparam int LN2 = GL;                                  // 2-byte (ws, w1, w2), 1-byte (head W): AB/2 or Tn
    localparam int LN4 = (AB / 4 < GL) ? AB / 4 : GL;         // 4-byte (recip, sums, m1, mask, head bias)
    localparam int LN8 = (AB / 8 < GL) ? AB / 8 : GL;         // 8-byte (bs, o1, b2)
    logic [LN4-1:0] g_flt;            // G: the segment's lanes that failed their check (stage F)
    logic        e_v, f_v, g_v, h_v;
    kind_t       e_kind, f_kind, g_kind;
    logic [DG_AXI_DATA_BITS-1:0] e_data;
    logic [1:0]  e_esz;
    logic [SEGW-1:0] e_n, f_n, g_n_el, h_n;
    logic [31:0] e_e, f_e, g_e, h_e, e_c, e_row, f_row, g_row;
    logic        e_rend, f_rend, g_rend;
    logic        f_c0, g_hb0;         // the segment starts its row; a head W row's first (G)
    logic signed [63:0] g_bias;       // G: the head W row's bias (its class's m1 entry)
    logic [31:0] f_rc [GL];        // F: row of bank b holding the segment's column in it
    localparam int LBW = (LN4 > 1) ? $clog2(LN4) : 1;
    localparam int TLW0 = (GLL > 0) ? GLL : 1;
    logic [LBW-1:0] f_bl [GL];     // sums: the lane of bank b, valid
    logic [GL-1:0] f_bv;
    // stage F's selects, decoded in stage E (issue 16: off the paths of stage F): the lanes
    // inside the segment, the bank of lane l's element f_e + l, bank b's lane for the GL-lane
    // streams (the row products and the spatial taps) and the tap row's (ky, kx), and whether
    // bank b's sums read is the row stage F writes now (forwarded a cycle later, ac_fw_wd)
    logic [AB-1:0] f_lv;
    logic [TLW0-1:0] f_lne [GL];
    logic [TLW0-1:0] f_bl2 [GL];
    logic [GL-1:0] f_bv2;
    logic [1:0]  f_ky, f_kx;
    logic [GL-1:0] f_fw;
    logic        f_kw12, f_ko1;
    // gate-2 masks: the active channels of a channel bitmap word, per byte (the popcount split
    // over stages F and G: bytes in F, their sum in G)
    logic [3:0]  g_pc [LN4][4];
    // gate-2 masks: the word each lane writes in stage G (into spat, or into the ci banks)
    logic [LN4-1:0] g_mk_we, g_mk_sp;
    logic [15:0] g_mk_wi [LN4];
    // gate-2 masks: the tile bitmap's words into spat, word w from word w mod (AB / 4) of the
    // rotated beat f_brot (a stream's element i sits there; issue 16: no lane mux per word):
    // word w written in stage G (g_swe, decoded per word in stage E, f_swe)
    localparam int NTW = (NCELL + 31) / 32;                      // spat's words a mask writes
    localparam int NTWB = $clog2(NTW + 1) + 1;                   // an index below 2 NTW + 1
    logic [NTW-1:0] f_swe, g_swe, sw_tile;
    logic [31:0] g_sd [AB / 4];
    logic [31:0] g_mk_d [LN4];
    logic [LN4-1:0] f_msp;            // gate-2 masks, stage F: word e is the tile bitmap's (e < g2_wt)
    logic [15:0] f_mwi [LN4];         // and its index in its bitmap
    logic [31:0] f_vm [LN4];          // gate-2 masks: the word's valid bits          // gate-2 masks: conv1's channel bitmap words (padding cleared)
    logic signed [63:0] f_x [AB];
    logic signed [63:0] g_p [GL];   // products (w1, w2, head W) or hidden A*m1
    logic signed [63:0] g_o [LN8];     // hidden: o1 + 2^(s-1)
    logic [HTW-1:0] h_t [LN8];         // hidden: v >> 8 (s div 8), its low HTW bits
    logic [LN8-1:0] h_hi, h_neg;       // hidden: a bit of v from HTW + 8 (s div 8) on; v < 0
    // hidden, stage G: v = (A*m1's low half + o1 + 2^(s-1)) + its high half's bits, two adds with
    // the first sum kept apart (issue 16: as one three-operand sum the tools mapped the top
    // bits of v to a ripple of LUTs, 11 levels into h_hi)
    (* keep *) logic [64*LN8-1:0] h_v1;
    for (genvar l = 0; l < LN8; l++) begin : g_hv1
        assign h_v1[64 * l +: 64] = g_p[l] + g_o[l];
    end
    // on-chip data
    logic [7:0]  bins_m [4 * MAXG];
    // F: bin-table entry i is written when f_bwe[i] (decoded per entry in stage E) from byte
    // i mod AB of f_brot, the beat rotated by the stream's start offset in its beat (bn_lo):
    // entry i is byte (lo + i) mod AB of whichever beat holds it, so each entry takes a fixed
    // byte (issue 16: an AB-way lane mux per entry was ~2k LUT at ultra96; one rotator instead)
    localparam int NBIN = 4 * MAXG;
    localparam int ABW = (AB > 1) ? $clog2(AB) : 1;
    localparam int NBW = $clog2(NBIN) + 1;                       // an index below 2 NBIN
    logic [NBIN-1:0] f_bwe;
    logic [ABW-1:0] bn_lo;            // the stream's first byte in its beat (G_SP3)
    logic [7:0] f_brot [AB];          // F: byte (bn_lo + j) mod AB of the beat
    logic        acc_fresh;           // this SUMS stream's first row starts the sums (no clear)
    // pooled values: |P| < 2^17 for the sums of an 8-bit map (the domain of the integer gates;
    // dgfpga.runtime.interpreter.GateDomainError outside it), stored in PVW bits
    // (the bins' P and the spatial weights live in block RAM: see "spatial memories" below)
    logic signed [LGW-1:0] bs_r;      // (|bs| < 2^46: checked as it streams in)
    // (recip, Pt, A, m1, h and the logits: lane-banked RAMs, see "lane-banked memories")
    logic [NCELLP-1:0] spat;
    // gate-2: conv1's channel mask as read (the tile mask goes to `spat`), its active channels,
    // a padding bit seen in either bitmap (reported after the parameter checks), the tile scan
    logic [15:0] t2_nc;
    // gate-2: the mask segment's active channels (stage G: the byte counts' two halves, each a
    // tree), added into t2_nc a cycle later (stage H; issue 16: the sum trees and the accumulate
    // in two cycles, each tree half as deep); t2_nz: t2_nc will
    // be non-zero, set in stage G for G_NEXT's test (t2_nc itself is read in G_TSCAN only,
    // a cycle or more after that test)
    logic [15:0] t2_ps [2];
    logic t2_pv, t2_nz;
    logic        m_bad;
    logic [LN4-1:0] g_mbl;            // stage G: the lanes' mask words with a padding bit set
    logic [15:0] t2_t, t2_t0;         // scanned tile, first tile of the current run
    logic [15:0] t2_t1;               // t2_t + 1 (issue 16: no increment before the tile-bit read)
    logic        t2_run, t2_any;      // inside a run of active tiles; a sums stream happened
    // gate-2 pool pass: the compact index j of channel lc as (row, row + 1, lane) of the banks
    localparam int TLW = (GLL > 0) ? GLL : 1;
    logic [15:0] t2_row, t2_row1;
    logic [TLW-1:0] t2_lo;
    // loops
    logic [7:0]  b_gy, b_gx, b_r;     // bin sums: bin, sum-tile row
    logic [1:0]  b_gx3;               // b_gx mod 3
    logic [15:0] lc;                  // channel / pair counter
    // the channel loops (pool, spatial row, gate-2 pool) step lc by GL: the channels left from
    // lc on and "this is the last step" are registers (no add-and-compare on the loop's path)
    // (lc_remn, lc_remnn: the channels left after this step and the next; lc_lvn, lc_lastn:
    // lc_lv and lc_last of the next step)
    logic [15:0] lc_remn, lc_remnn;
    logic [GL-1:0] lc_lv, lc_lvn;     // lane l < the channels left (off the loops' paths)
    logic        lc_lastn;
    // a loop's first two steps over in_c (gate record, gate-2): lanes and "last step"
    logic [GL-1:0] lcs_lv [2][2];
    logic [1:0]  lcs_last [2];
    always_ff @(posedge clk) begin
        for (int k = 0; k < 2; k++) begin
            logic [15:0] n;
            n = (k == 1) ? g2_in_c : g_in_c;
            for (int l = 0; l < GL; l++) begin
                lcs_lv[k][0][l] <= 32'(l) < 32'(n);
                lcs_lv[k][1][l] <= 32'(l) < 32'(16'(n - 16'(GL)));
            end
            lcs_last[k][0] <= 32'(n) <= GL;
            lcs_last[k][1] <= 32'(n) <= 2 * GL;
        end
    end
    logic        lc_last;
    logic [1:0]  sp_ky;               // spatial: kernel row
    logic [7:0]  sp_by, sp_bx;        // spatial: the bin of the pass
    logic [1:0]  sp_c3;               // spatial: (sp_bx + 1) mod 3, the cell bank of tap 0
    // spatial: the bin has a next row / a row before it (the cells of kernel rows 0 / 2 inside
    // the grid), a next column / a column before it (taps kx = 0 / 2)
    logic        sp_rin0, sp_rin2, sp_cin0, sp_cin2;
    logic        sp_init, sp_last;    // spatial: the pass's first cycle; the grid's last bin
    logic        pool_tot;
    // writes
    logic [63:0] w_addr;
    logic [1:0]  w_kind;              // 0 words (masks/bitmap), 1 list, 2 int64 logits, 3 u32 log
    logic [1:0]  w_sel;               // list: 0 tiles on, 1 tiles off, 2 channels on;
                                      // words: 0 tile then channel bitmap (masks), 1 tile bitmap,
                                      // 2 channel bitmap (gate-2's mask_c2)
    logic [15:0] w_limit, w_total, w_emitted, w_scan;
    logic [15:0] w_scan1;             // w_scan + 1 (issue 16: no increment before the tile-bit read)
    logic        w_more;              // w_scan < w_limit
    logic [15:0] w_tm1;               // w_total - 1
    logic [15:0] cnt_t, cnt_c;        // tiles / channels on so far (spatial cells, b2 decisions)
    // word jobs: bytes from beat w_nx on (a checked section's size: < 2^32; past the last beat
    // it wraps to a large value, as at 64 bits: every byte's strobe on, never used)
    logic [32:0] w_rem;
    logic [23:0] w_beat, w_beats, w_bm1;
    logic [23:0] w_nx;                // word jobs: the beat loaded next into wq_*
    logic [23:0] w_nx1;               // w_nx + 1 (no add in front of the reads' address w_rd)
    logic [DG_AXI_DATA_BITS-1:0] lb_data;
    logic [15:0] lb_cnt;
    logic        lb_pend;
    logic [31:0] head_log;
    logic [7:0]  e_code;
    logic [15:0] e_entry;
    logic [4:0]  ck;                  // G_CHK: cycles waited for the record pipeline

    // The bin table's pair read port (issue 16: one port for the check and the bins' rows):
    // the bin-table check's pair lc (G_BCHK), read a cycle ahead (pair 0 while the bins stream
    // runs and G_NEXT starts the check, pair lc + 1 during the check) into bk_s / bk_e; after
    // the check, the row pair of bin b_gy into the same registers (b_rs / b_re below)
    logic [7:0] bk_s, bk_e, bk_lim;
    logic bk_last;
    always_ff @(posedge clk) begin
        logic [15:0] i, p;
        i = (st == G_BCHK) ? lc + 16'd1 : 16'd0;
        p = (st == G_BCHK || step == S_BCHK) ? i : 16'(b_gy);
        bk_s <= bins_m[(2 * 32'(p)) % (4 * MAXG)];
        bk_e <= bins_m[(2 * 32'(p) + 1) % (4 * MAXG)];
        bk_lim <= (i < 16'(g_gh)) ? g_st_h : g_st_w;
        bk_last <= i + 16'd1 == gg_n;
    end
    // The sequential scans of spat (gate-2's tile scan over t2_t, a list job's over w_scan; never
    // at once, and spat is not written during either): a 32-bit window whose bit 0 is the
    // scanned tile's, shifted as the index moves on and reloaded with the next word after a
    // word's last bit (issue 16: no 256-way bit reads of spat). sw_nxt: the word of the index
    // after the scanned one (a tile below NCELL: the cell index's bits only)
    logic [31:0] sw_win, sw_nxt;
    always_comb begin
        logic [15:0] i;
        i = (st == G_TSCAN) ? t2_t1 : w_scan1;
        sw_nxt = spat[((32'(i) % NCELL) >> 5) * 32 +: 32];
    end
    // gate-2 tile scan (G_TSCAN): "tile t2_t is past the last tile" as a register of the tile
    // scanned next: t2_t + 1 when G_TSCAN moves t2_t on now (ts_mv), else t2_t, both compares
    // in parallel (issue 16: no select behind the scan's decode into step; t2_t's other write,
    // the scan's set-up, is cycles before G_TSCAN)
    logic ts_past;
    wire ts_mv = st == G_TSCAN && !ts_past && (sw_win[0] || !t2_run);
    always_ff @(posedge clk) ts_past <= ts_mv ? 64'(t2_t1) >= g2_n : 64'(t2_t) >= g2_n;
`ifndef SYNTHESIS
    always_ff @(posedge clk)
        if (!rst && st == G_TSCAN && ts_past != (64'(t2_t) >= g2_n))
            $error("dg_gate: the tile scan's end flag");
`endif
    // gate-2 masks' padding (stage F's f_vm): the whole words of the tile and the channel
    // bitmap (word index) and the valid bits of a partial last word, from the record
    logic [15:0] vm_thi, vm_chi;
    logic [31:0] vm_tlo, vm_clo;
    always_ff @(posedge clk) begin
        for (int w = 0; w < NTW; w++) sw_tile[w] <= 32'(w) < g2_wt;
        vm_thi <= 16'(g2_n >> 5);
        vm_tlo <= (32'd1 << g2_n[4:0]) - 32'd1;
        vm_chi <= 16'(g2_wt) + (g2_in_c >> 5);
        vm_clo <= (32'd1 << g2_in_c[4:0]) - 32'd1;
    end
    logic [63:0] sums_abs, par_abs;   // registered (record pipeline)
    always_ff @(posedge clk) begin
        sums_abs <= a_sums_base + 64'(sums_off);
        par_abs <= a_weight_base + 64'(par_off);
    end
    // the channel gate's sections in the gate or the gate-2 blob (streamed once the sections
    // were checked inside the parameter region: offsets below 2^32)
    wire [31:0] cg_w1_off = 32'(is_g2 ? po2[DG_GATE2_P_W1] : po[DG_GATE_P_W1]);
    wire [31:0] cg_m1_off = 32'(is_g2 ? po2[DG_GATE2_P_M1] : po[DG_GATE_P_M1]);
    wire [31:0] cg_o1_off = 32'(is_g2 ? po2[DG_GATE2_P_O1] : po[DG_GATE_P_O1]);
    wire [31:0] cg_w2_off = 32'(is_g2 ? po2[DG_GATE2_P_W2] : po[DG_GATE_P_W2]);
    wire [31:0] cg_b2_off = 32'(is_g2 ? po2[DG_GATE2_P_B2] : po[DG_GATE_P_B2]);
    // the bin's rows [b_rs, b_re) (the pair port above, after the check) and columns [b_cs,
    // b_cs + b_cw) in sum tiles: registered from (b_gy, b_gx), read by the next bin's first
    // SUMS stream (>= 2 cycles after they change: the pool drains first)
    logic [7:0] b_rs, b_re, b_cs, b_cw;
    assign b_rs = bk_s;
    assign b_re = bk_e;
    always_ff @(posedge clk) begin
        b_cs <= bins_m[2 * 32'(g_gh) + 2 * 32'(b_gx)];
        b_cw <= bins_m[2 * 32'(g_gh) + 2 * 32'(b_gx) + 1] - bins_m[2 * 32'(g_gh) + 2 * 32'(b_gx)];
    end
    // the bin of the pool (b_gy, b_gx) and its reciprocal, by free-running registers: both settle
    // during the bin's SUMS streams, long before its pool (the spatial loop counts its own cells)
    logic [15:0] cur_cell, rc_i;
    always_ff @(posedge clk) begin
        cur_cell <= 16'(32'(b_gy) * 32'(g_gw) + 32'(b_gx));
        rc_i <= is_g2 ? 16'd0 : pool_tot ? 16'(g_n) : cur_cell;   // gate-2: R(H*W) at 0
    end

    // ------------------------------------------------------------------ lane-banked memories
    // One-dimensional on-chip arrays, each as GL RAM banks: entry i in bank i mod GL at row
    // i div GL. A cycle touches at most GL consecutive entries (a stream segment is cut to GL
    // elements), so every bank has one registered write port and one read port. Writes land a
    // cycle late: nothing reads an entry in the cycle after writing it (each array is read in a
    // later stream / phase).
    // Asynchronous read (distributed RAM) for the reciprocals (rc: a few entries per bin);
    // the others a synchronous read, block RAM where deep (issue 16: at 2048 channels
    // these vectors were 13.8k LUT of LUTRAM): the read address is presented a cycle ahead
    // (the stream's stage E, the write jobs' next beat, the pool's next step), the data in
    // stage F / the step. The channel sums (ac) are read and written in the same stage F (a
    // SUMS row adds onto the sums): the write of the segment before is forwarded (ac_fw_*).
// DG_BANKS(NAME, W, DEPTH, SYNC): GL lane banks NAME of W-bit entries, DEPTH in all; SYNC = 1:
// a registered read port (block RAM from BRAM_MIN_DEPTH rows), SYNC = 0: an asynchronous read
`define DG_BANKS(NAME, W, DEPTH, SYNC) \
    localparam int NAME``_D = ((DEPTH) + GL - 1) / GL; \
    localparam int NAME``_AW = (NAME``_D > 1) ? $clog2(NAME``_D) : 1; \
    logic [GL-1:0] NAME``_we; \
    logic [NAME``_AW-1:0] NAME``_wa [GL]; \
    logic [W-1:0] NAME``_wd [GL]; \
    logic [NAME``_AW-1:0] NAME``_ra [GL]; \
    logic [W-1:0] NAME``_q [GL]; \
    for (genvar b = 0; b < GL; b++) begin : g_``NAME \
        if (!(SYNC)) begin : g_async \
            logic [W-1:0] mem [NAME``_D]; \
            always_ff @(posedge clk) if (NAME``_we[b]) mem[NAME``_wa[b]] <= NAME``_wd[b]; \
            assign NAME``_q[b] = mem[NAME``_ra[b]]; \
        end else begin : g_sync \
            logic [W-1:0] q_r;        /* a plain register (an array element would not be) */ \
            if (NAME``_D >= BRAM_MIN_DEPTH) begin : g_bram \
                (* ram_style = "block" *) logic [W-1:0] mem [NAME``_D]; \
                always_ff @(posedge clk) begin \
                    if (NAME``_we[b]) mem[NAME``_wa[b]] <= NAME``_wd[b]; \
                    q_r <= mem[NAME``_ra[b]]; \
                end \
            end else begin : g_lut \
                logic [W-1:0] mem [NAME``_D]; \
                always_ff @(posedge clk) begin \
                    if (NAME``_we[b]) mem[NAME``_wa[b]] <= NAME``_wd[b]; \
                    q_r <= mem[NAME``_ra[b]]; \
                end \
            end \
            assign NAME``_q[b] = q_r; \
        end \
    end
    localparam int BRAM_MIN_DEPTH = 128;  // a bank this deep goes to block RAM (ultra96: 256)
    `DG_BANKS(rc, 32, NCELL + 1, 0)   // reciprocals R(n) per bin, then R(H*W)
    // pooled totals Pt per channel at rows [0, PH_D), hidden units h (0..HMAX, zero-extended)
    // at rows [PH_D, 2 PH_D): one memory for the fc1 / fc2 row products' operand (issue 16: one
    // source less in front of the shared multiplier; Pt is written by the pool before fc1, h
    // in stage H after it, never in one cycle)
    localparam int PH_D = (MAXC + GL - 1) / GL;
    `DG_BANKS(ph, PVW, 2 * GL * PH_D, 1)
    `DG_BANKS(am, AW, MAXC, 1)        // fc1 row sums A per hidden unit (|A| < 2^(AW-1))
    // hidden requant multipliers; the head's biases (issue 16: the row sums start from them,
    // no adder or second source on the logits' writes)
    `DG_BANKS(m1, 32, (MAXC > DG_MAX_CLASSES) ? MAXC : DG_MAX_CLASSES, 1)
    `DG_BANKS(lg, 64, MAXL, 1)        // channel-gate logits without b2 / head logits
    `DG_BANKS(ac, SW, MAXC, 1)        // channel sums of SUMS (|S| < 2^(SW-1))
`undef DG_BANKS
    // row of bank b holding the entry of [base, base + GL) that falls into it
    function automatic logic [31:0] brow(input logic [31:0] base, input int b);
        return (base + ((32'(b) - base) & 32'(GL - 1))) >> GLL;
    endfunction
    function automatic logic [31:0] lane(input logic [31:0] i);
        return i & 32'(GL - 1);
    endfunction
    // the write jobs' logits: the beat offered next (w_nx, or w_nx + 1 when a beat is taken
    // now; 0 when a job starts), so lg_q holds beat w_nx's entries
    logic [23:0] w_rd;
    // bank b's row of beat w_nx's / w_nx + 1's logits (AB / 8 entries per beat; issue 16: no
    // arithmetic behind w_rd's select)
    logic [lg_AW-1:0] lg_r0 [GL], lg_r1 [GL];
    // a word job's beat is taken now (w_nx moves on)
    wire w_take = (st == G_WCMD && wcmd_ready) || (st == G_WDATA && w_kind != 2'd1 && wd_ready);
    always_comb begin
        if (st == G_WJOB) w_rd = 24'd0;
        else if (w_take) w_rd = w_nx1;
        else w_rd = w_nx;
        for (int b = 0; b < GL; b++) begin
            rc_ra[b] = rc_AW'(rc_i >> GLL);
            // synchronous reads: stage E's addresses (the data in stage F)
            ph_ra[b] = ph_AW'(((e_kind == K_W2) ? 32'(PH_D) : 32'd0) + brow(e_c, b));
            am_ra[b] = am_AW'(brow(e_e, b));
            // (the head: a W row's stage E reads its class's bias, registered in stage F)
            m1_ra[b] = m1_AW'(is_head ? e_row >> GLL : brow(e_e, b));
            // (the logits job's beat w_rd: its rows kept for both beats w_rd can be, lg_r0 /
            // lg_r1 below; row 0 in G_WJOB)
            lg_ra[b] = (st == G_WJOB) ? '0 : (st == G_WDATA || st == G_WCMD) ? (w_take ? lg_r1[b] : lg_r0[b])
                                                                           : lg_AW'(brow(e_e, b));
            // G_POOL: the next step's row (lc is a multiple of GL; row 0 while no stream is in
            // flight, so in the G_NEXT that starts the pool); G_POOL2: the entry j + (b - j) mod
            // GL of bank b, the data a cycle later (stage A2); the head's W stream: stage R's
            // (the data in stage E, into q_s for stage F's row products); a stream: stage E's
            ac_ra[b] = ac_AW'((st == G_POOL) ? (32'(lc) >> GLL) + 32'd1
                              : (st == G_POOL2) ? ((32'(b) < 32'(t2_lo)) ? 32'(t2_row1) : 32'(t2_row))
                              : (s_kind == K_HW) ? brow(s_col, b)
                              : e_v ? brow(e_c, b) : 32'd0);
        end
    end
    assign cyc_ra = w_rd;             // the log job's beat w_nx is in cyc_q (as lg_q)
    logic [RW-1:0] rc_cur;            // R(n) <= 2^RB: checked as it streams in
    always_ff @(posedge clk) rc_cur <= RW'(rc_q[lane(32'(rc_i))]);

    // gate-2: conv1's channel bitmap as read (max_in_channels bits) in LN4 word RAM banks (word w
    // in bank w mod LN4, row w div LN4; issue 16: a bit vector written by word at run-time
    // indices): written from stage G (the mask stream's channel words, ascending, at most LN4
    // per cycle), read by the gate-2 pool a word ahead into the window ci_win, whose low GL
    // bits are the step's channels lc.. (the window shifts by GL per step and reloads the next
    // word after its last step; outside G_POOL2 it holds word 0, read at row 0)
    localparam int LN4B = (LN4 > 1) ? $clog2(LN4) : 1;
    localparam int CIW = (MAXC + 31) / 32;
    localparam int CI_D = (CIW + LN4 - 1) / LN4;
    localparam int CI_AW = (CI_D > 1) ? $clog2(CI_D) : 1;
    logic [LN4-1:0] ci_we;
    logic [CI_AW-1:0] ci_wa [LN4];
    logic [31:0] ci_wd [LN4];
    logic [CI_AW-1:0] ci_ra;
    logic [31:0] ci_q [LN4];
    logic [31:0] ci_win;
    for (genvar k = 0; k < LN4; k++) begin : g_ci
        logic [31:0] mem [CI_D];
        logic [31:0] q_r;
        always_ff @(posedge clk) begin
            if (ci_we[k]) mem[ci_wa[k]] <= ci_wd[k];
            q_r <= mem[ci_ra];
        end
        assign ci_q[k] = q_r;
    end
    always_comb begin
        logic [31:0] w;
        w = (st == G_POOL2) ? (32'(lc) + 32'(2 * GL)) >> 5 : 32'd0;
        ci_ra = CI_AW'(w >> ((LN4 > 1) ? LN4B : 0));
    end
    always_ff @(posedge clk) begin
        if (st != G_POOL2) ci_win <= ci_q[0];
        else if (32'(lc[4:0]) + 32'(GL) >= 32)
            ci_win <= ci_q[LN4B'((32'(lc) >> 5) + 32'd1) & LN4B'(LN4 - 1)];
        else ci_win <= ci_win >> GL;
    end

    // the pool datapath, GL lanes: P = (S*R + 2^(RB-F-1)) >>> (RB-F), shared by the gate
    // record's bins and totals (G_POOL: S = the channel sums of lanes lc..) and the gate-2
    // totals (G_POOL2: channel lc + l takes the compact sum of its index j when conv1 kept it,
    // else 0; the compact indices of GL consecutive channels are consecutive, so they fall
    // into GL different banks: bank b at row t2_row, or t2_row + 1 below the lane t2_lo of j).
    // The pool's lanes are the banks (lane b pools bank b's sum); gate-2's P of bank b goes to
    // the channel lane that kept it after the pool, at P's PVW bits (stage Q2; issue 16: the
    // lane mux on the pooled values, not on the SW-bit sums in front of the multiplier)
    logic [31:0] pl_k;                // channels of the step conv1 kept
    logic [GL-1:0] pl_on;
    // stage A2 of the gate-2 pool: the step's lanes, registered with its read
    logic a2_v, a2_any;
    logic [GL-1:0] a2_on, a2_lv;
    logic [31:0] a2_c;
    // the bank lane l takes in G_POOL2: (j + the channels kept below lane l) mod GL, registered
    // with the step (the prefix count off the pooled values' path), then with stage Q (q_bk)
    logic [TLW0-1:0] a2_bk [GL];
    logic [TLW0-1:0] pl_bk [GL];
    // the set bits of GL lanes: 4-bit groups by a table (LUT logic), then their sum (issue 16:
    // no chain of adds behind the gate-2 pool's window into t2_row / t2_lo)
    function automatic logic [GLL:0] cnt_on(input logic [GL-1:0] v);
        logic [GLL:0] n;
        n = '0;
        for (int q = 0; q < GL; q += 4) begin
            logic [3:0] u;
            logic [2:0] c;
            u = 4'(v >> q);
            case (u)
                4'd0: c = 3'd0;
                4'd1, 4'd2, 4'd4, 4'd8: c = 3'd1;
                4'd7, 4'd11, 4'd13, 4'd14: c = 3'd3;
                4'd15: c = 3'd4;
                default: c = 3'd2;
            endcase
            n = n + (GLL + 1)'(c);
        end
        return n;
    endfunction
    always_comb begin
        logic [31:0] k;
        // gate-2: lane l's bit is ci_win[l] (the window above)
        for (int l = 0; l < GL; l++) pl_on[l] = lc_lv[l] && ci_win[l];
        pl_k = 32'(cnt_on(pl_on));
        k = 32'd0;                    // channels kept below lane l: lane l reads bank j + k
        for (int l = 0; l < GL; l++) begin
            pl_bk[l] = TLW0'(lane(32'(t2_lo) + k));
            k = k + 32'(pl_on[l]);
        end
    end

    // ------------------------------------------------------------------ spatial memories
    // The spatial 3x3 runs bin by bin, right after the bin's pool (issue 15: nothing on chip
    // scales with max_in_channels x grid): bin (by, bx)'s pooled vector P_b[c] (one bin,
    // GL lane banks at c div GL) times the taps ws[ky][kx][c] is the contribution of that bin
    // to the logit of cell (by - ky + 1, bx - kx + 1); per cycle one kernel row ky, three taps
    // kx x GL channels. The cell logits (int64, exact: the order of summation does not change
    // them) live in three banks by cell column mod 3 (a kernel row's three cells are three
    // consecutive columns), each cell starting at bs on its first contribution and decided
    // (logit >= 0) on its last (raster order of the bins: both are known from the position).
    // ws: GL lane banks of 3 taps (kx) x 16 bits at {ky, c div GL}, one synchronous read port,
    // a write per tap (the stream's segment of one tap row, <= GL consecutive channels).
    localparam int CGM = 1 << $clog2((MAXC + GL - 1) / GL);  // channel groups (power of two)
    localparam int CGL = $clog2(CGM) > 0 ? $clog2(CGM) : 1;
    localparam int G3 = (MAXG + 2) / 3;                          // cell columns per column bank
    localparam int LDEPTH = MAXG * G3;                           // cell logits per bank
    localparam int LAW = $clog2(LDEPTH) > 0 ? $clog2(LDEPTH) : 1;
    localparam int WSDEPTH = 3 * CGM;
    localparam int WSAW = $clog2(WSDEPTH);
    // stage Q of the pool: the GL sums of the cycle before, their destination; P computed here
    logic q_v, q_tot;
    logic [GL-1:0] q_lv;
    // stage Q's step: lane l takes bank q_bk[l]'s P when q_on[l], else 0 (stage Q2; the gate
    // record's totals: lane l, bank l, on, so one lane mux serves both pools)
    logic [GL-1:0] q_on;
    logic [TLW0-1:0] q_bk [GL];
    // stage Q2: the totals Pt per bank (p_wd, registered in stage Q for the P banks too), written
    // into the ph banks per channel lane a cycle after stage Q (nothing reads Pt before the fc1
    // stream, many cycles after the pool drained)
    logic qt_v;
    logic [GL-1:0] qt_lv, qt_on;
    logic [TLW0-1:0] qt_bk [GL];
    logic [31:0] qt_c;
    logic signed [SW-1:0] q_s [GL];
    // the lanes' shared multiplier (see "arithmetic"): mm[l] = ma[l] * mb[l]
    localparam int MAW = (RW + 1 > 16) ? RW + 1 : 16;             // {0, R} or an int16 weight
    // the product ma * mb as MNC products of ma and 17-bit chunks of mb (unsigned, the top one
    // signed), each added to the one below shifted right by 17 (issue 16: one DSP48E2 per chunk,
    // 3 per lane at ultra96, where the tools' own split of ma * mb takes 4)
    localparam int MCK = 17;
    localparam int MNC = (SW + MCK - 1) / MCK;
    logic signed [MAW-1:0] ma [GL];
    logic signed [SW-1:0] mb [GL];
    logic signed [SW+MAW-1:0] mm [GL];
    logic [31:0] q_c;
    wire pipe_busy = e_v || f_v || g_v || h_v || q_v || a2_v;   // the stream or the pool pipeline
    function automatic logic [CGL-1:0] cgrp(input logic [31:0] c);   // c div GL
        return CGL'(c >> GLL);
    endfunction
    // writes (registered; the memories take them a cycle later)
    logic [2:0] ws_we [GL];        // per lane: tap kx
    logic [WSAW-1:0] ws_wa [GL];
    logic signed [15:0] ws_wd [GL];
    logic [GL-1:0] p_we;
    logic [CGL-1:0] p_wa;
    logic signed [PVW-1:0] p_wd [GL];
    // reads (stage 0 addresses, data in stage 1)
    logic [WSAW-1:0] ws_ra;
    logic [CGL-1:0] p_ra;
    logic signed [15:0] ws_q [3][GL];
    logic signed [PVW-1:0] p_q [GL];
    for (genvar l = 0; l < GL; l++) begin : g_smem
        logic [47:0] ws_mem [WSDEPTH];
        logic signed [PVW-1:0] p_mem [CGM];
        always_ff @(posedge clk) begin
            for (int kx = 0; kx < 3; kx++)
                if (ws_we[l][kx]) ws_mem[ws_wa[l]][kx * 16 +: 16] <= ws_wd[l];
            if (p_we[l]) p_mem[p_wa] <= p_wd[l];
        end
        logic [47:0] ws_rd;
        logic signed [PVW-1:0] p_rd, p_bd;
        logic p_byp;
        // P's read is write-first (a pass's first read meets the pool's last write): a plain
        // read and the write of the same cycle registered beside it, selected after the
        // registers (issue 16: a bypass inside the read register compares the address's next
        // value, i.e. the spatial loop's decode)
        always_ff @(posedge clk) begin
            ws_rd <= ws_mem[ws_ra];
            p_rd <= p_mem[p_ra];
            p_byp <= p_we[l] && p_wa == p_ra;
            p_bd <= p_wd[l];
        end
        assign p_q[l] = p_byp ? p_bd : p_rd;
        for (genvar kx = 0; kx < 3; kx++) begin : g_kx
            assign ws_q[kx][l] = signed'(ws_rd[kx * 16 +: 16]);
        end
    end

    // spatial stage 0: the reads of bin (sp_by, sp_bx), kernel row sp_ky, channels lc.. (G_SPAT):
    // the cells it feeds are row cy = by - ky + 1, columns cx = bx - kx + 1
    logic [7:0] s0_cy;                // (a row outside the grid is not used)
    logic s0_row_in;
    // (per cell bank kb: the cell of bank kb, fed by tap s0_kx[kb])
    logic [1:0] s0_kx [3];
    logic [2:0] s0_kxv;               // the cell inside the grid (and the row inside)
    logic [2:0] s0_first, s0_last;    // the cell's first / last contribution
    logic [GL-1:0] s0_lv;          // lane's channel < in_c
    always_comb begin
        logic rf, rl;
        s0_cy = sp_by - 8'(sp_ky) + 8'd1;
        // the cell row inside the grid (ky = 1: the bin's own row), from the pass's registers
        s0_row_in = (sp_ky == 2'd0) ? sp_rin0 : (sp_ky == 2'd1) || sp_rin2;
        // raster order of the bins: a cell's first contribution is from bin (cy-1, cx-1) (or its
        // row / column 0), its last from bin (cy+1, cx+1) (or the grid's last row / column)
        rf = sp_ky == 2'd0 || (sp_ky == 2'd1 && !sp_rin2);
        rl = sp_ky == 2'd2 || (sp_ky == 2'd1 && !sp_rin0);
        // per cell bank kb (cell column mod 3): the tap kx whose cell falls into it
        for (int kb = 0; kb < 3; kb++) begin
            logic [1:0] kx;
            logic cf, cl;
            kx = 2'((32'(sp_c3) + 32'(3 - kb)) % 32'd3);
            s0_kx[kb] = kx;
            s0_kxv[kb] = s0_row_in && ((kx == 2'd0) ? sp_cin0 : (kx == 2'd1) || sp_cin2);
            cf = kx == 2'd0 || (kx == 2'd1 && !sp_cin2);
            cl = kx == 2'd2 || (kx == 2'd1 && !sp_cin0);
            s0_first[kb] = rf && cf;
            s0_last[kb] = rl && cl;
        end
        ws_ra = WSAW'(32'(sp_ky) * CGM + 32'(cgrp(32'(lc))));
        p_ra = cgrp(32'(lc));
        s0_lv = lc_lv;
    end
    // stage 1: BRAM data; stage 2: the 3*GL products; stage 3: per-tap sums; stage 4: the kernel
    // row's sums per tap; stage 5: the cells' logits (read, add, write; decided on the last)
    logic s1_v, s2_v, s3_v, s4_v;
    logic s1_end, s2_end, s3_end;     // last channels of the kernel row
    logic s1_beg, s2_beg;             // first channels of the kernel row
    logic [1:0] s1_kx [3], s2_kx [3], s3_kx [3];
    logic [7:0] s1_bx, s2_bx, s3_bx;  // the bin's column
    logic [2:0] s1_kxv, s2_kxv, s3_kxv, s4_kxv;
    logic [2:0] s1_first, s2_first, s3_first, s4_first;
    logic [2:0] s1_last, s2_last, s3_last, s4_last;
    logic [7:0] s1_cy, s2_cy, s3_cy;  // the cells' row and columns
    logic [7:0] s1_cx [3], s2_cx [3], s3_cx [3];
    logic [LAW-1:0] s4_la [3];        // stage 4: the cell's row in its bank
    // stage 4: the bin's own cell cy * gw + bx (the kernel row's cells are it - 1, it, it + 1:
    // one decode of it for the three writes into spat, issue 16) and the cell bank of each
    // (a cell of the grid: below NCELL, so the cell index's bits, not the padded vector's)
    localparam int NCB = (NCELL > 1) ? $clog2(NCELL) : 1;
    logic [NCB-1:0] s4_ctr;
    logic [1:0] s4_kbo [3];           // the cell bank kb of the cell s4_ctr - 1 + d
    logic [GL-1:0] s1_lv;
    // per tap: the products of lanes 2i and 2i + 1 summed in stage 2 (issue 16: in synthesis
    // a pair of DSP48E2s, the second adding the first's product through the cascade, so the
    // tap's adder tree in the fabric takes GL / 2 terms, not GL)
    localparam int NPR = (GL + 1) / 2;
    logic signed [PVW+16:0] s2_pp [3][NPR];
    logic signed [PVW+15+GLL+1:0] s3_ksum [3];   // per tap kx
    logic signed [SKW-1:0] s3_kacc [3];  // the kernel row's sums so far (0 at a row's start)
    logic signed [SKW-1:0] s3_ks [3];    // bank kb's tap sum (a select apart from the add)
    logic signed [SKW-1:0] s4_ktot [3];
    always_ff @(posedge clk) begin
        s1_v <= 1'b0;
        s2_v <= s1_v;
        s3_v <= s2_v;
        s4_v <= s3_v && s3_end;
        s2_end <= s1_end;
        s3_end <= s2_end;
        s2_beg <= s1_beg;
        s2_kxv <= s1_kxv;
        s3_kxv <= s2_kxv;
        s4_kxv <= s3_kxv;
        s2_first <= s1_first;
        s3_first <= s2_first;
        s4_first <= s3_first;
        s2_last <= s1_last;
        s3_last <= s2_last;
        s4_last <= s3_last;
        s2_cy <= s1_cy;
        s3_cy <= s2_cy;
        s2_cx <= s1_cx;
        s3_cx <= s2_cx;
        s2_kx <= s1_kx;
        s3_kx <= s2_kx;
        s2_bx <= s1_bx;
        s3_bx <= s2_bx;
        // the products per tap kx in lane pairs (s2_pp; issue 16: no tap select in front of the
        // multipliers; the cell banks take their tap's sum in stage 3; a cell outside the grid
        // is not written, so its bank's sums need no zeroing)
        for (int kx = 0; kx < 3; kx++) begin
            logic signed [PVW+15+GLL+1:0] t [NPR];            // a balanced adder tree
            for (int l = 0; l < NPR; l++) t[l] = (PVW+GLL+17)'(s2_pp[kx][l]);
            for (int w = NPR; w > 1; w = (w + 1) / 2) begin
                for (int i = 0; i < w / 2; i++) t[i] = t[2 * i] + t[2 * i + 1];
                if (w % 2 == 1) t[w / 2] = t[w - 1];
            end
            s3_ksum[kx] <= t[0];
        end
        if (s3_v) begin
            for (int kb = 0; kb < 3; kb++) begin
                logic signed [SKW-1:0] v;
                v = s3_kacc[kb] + s3_ks[kb];
                s3_kacc[kb] <= v;
                s4_ktot[kb] <= v;
                s4_la[kb] <= LAW'(32'(s3_cy) * G3 + 32'(s3_cx[kb] / 8'd3));
                // (the cell column cx = bx + 1 - kx = bx - 1 + d for d = 2 - kx)
                for (int d = 0; d < 3; d++) if (s3_kx[kb] == 2'(2 - d)) s4_kbo[d] <= 2'(kb);
            end
            s4_ctr <= NCB'(32'(s3_cy) * 32'(g_gw) + 32'(s3_bx));
        end
        // a kernel row's first step in stage 3 next: its sums start from 0 (a clear, no
        // select in front of the add)
        if (s2_v && s2_beg) for (int kb = 0; kb < 3; kb++) s3_kacc[kb] <= '0;
        if (st == G_SPAT && !sp_init) begin
            s1_v <= 1'b1;
            s1_end <= !s0_row_in || lc_last;
            s1_beg <= lc == 16'd0;
            s1_kxv <= s0_kxv;
            s1_first <= s0_first;
            s1_last <= s0_last;
            s1_cy <= s0_cy;
            for (int kb = 0; kb < 3; kb++) s1_cx[kb] <= sp_bx + 8'd1 - 8'(s0_kx[kb]);
            s1_kx <= s0_kx;
            s1_bx <= sp_bx;
            s1_lv <= s0_lv;
        end
    end
    // stage 2: s2_pp[kx][i] = tap kx's products of lanes 2i and 2i + 1 (a lane past in_c
    // gives 0)
`ifdef SYNTHESIS
    // As DSP48E2 cells (UG579; the black box of dg_mac_array.sv): lane 2i's product (P = M, no
    // register) into lane 2i + 1's cell through PCIN (P = M + PCIN, P register: s2_pp). A = P
    // (PVW <= 27 bits), B = the tap weight; a lane past in_c has its A input switched off by
    // the dynamic INMODE[1] (no fabric select). OPMODE W = 0, Y = X = M, Z = 0 / PCIN; ALUMODE
    // 0000. Same values in the same cycles as the model below.
    for (genvar kx = 0; kx < 3; kx++) begin : g_spp
        for (genvar i = 0; i < NPR; i++) begin : g_pr
            wire [47:0] pc [2], pp [2];
            for (genvar j = 0; j < 2; j++) begin : g_j
                localparam int L = 2 * i + j;
                localparam int LL = (L < GL) ? L : GL - 1;
                wire on = (L < GL) && s1_lv[LL];
                DSP48E2 #(.AREG(0), .ACASCREG(0), .BREG(0), .BCASCREG(0), .DREG(0), .ADREG(0),
                          .MREG(0), .PREG(j), .CREG(0), .INMODEREG(0), .OPMODEREG(0),
                          .ALUMODEREG(0), .CARRYINREG(0), .CARRYINSELREG(0),
                          .AMULTSEL("AD"), .BMULTSEL("B"), .PREADDINSEL("A"),
                          .USE_MULT("MULTIPLY"), .USE_SIMD("ONE48"))
                dsp (.CLK(clk), .A(30'(p_q[LL])), .D(27'd0), .B(18'(ws_q[kx][LL])), .C(48'd0),
                     .PCIN(j == 1 ? pc[0] : 48'd0),
                     .ACIN(30'd0), .BCIN(18'd0), .CARRYCASCIN(1'b0), .MULTSIGNIN(1'b0),
                     .CARRYIN(1'b0), .CARRYINSEL(3'b000), .INMODE({3'b000, !on, 1'b0}),
                     .OPMODE({2'b00, j == 1 ? 3'b001 : 3'b000, 2'b01, 2'b01}), .ALUMODE(4'b0000),
                     .CEA1(1'b1), .CEA2(1'b1), .CEAD(1'b1), .CEALUMODE(1'b1), .CEB1(1'b1),
                     .CEB2(1'b1), .CEC(1'b1), .CECARRYIN(1'b1), .CECTRL(1'b1), .CED(1'b1),
                     .CEINMODE(1'b1), .CEM(1'b1), .CEP(1'b1), .RSTA(1'b0),
                     .RSTALLCARRYIN(1'b0), .RSTALUMODE(1'b0), .RSTB(1'b0), .RSTC(1'b0),
                     .RSTCTRL(1'b0), .RSTD(1'b0), .RSTINMODE(1'b0), .RSTM(1'b0), .RSTP(1'b0),
                     .PCOUT(pc[j]), .P(pp[j]));
            end
            assign s2_pp[kx][i] = (PVW+17)'(pp[1]);
        end
    end
`else
    always_ff @(posedge clk)
        for (int kx = 0; kx < 3; kx++)
            for (int i = 0; i < NPR; i++) begin
                logic signed [PVW+16:0] a, b;
                a = s1_lv[2 * i] ? (PVW+17)'(ws_q[kx][2 * i]) * (PVW+17)'(p_q[2 * i]) : '0;
                b = (2 * i + 1 < GL && s1_lv[(2 * i + 1) % GL])
                  ? (PVW+17)'(ws_q[kx][(2 * i + 1) % GL]) * (PVW+17)'(p_q[(2 * i + 1) % GL]) : '0;
                s2_pp[kx][i] <= a + b;
            end
`endif
    always_comb
        for (int kb = 0; kb < 3; kb++) s3_ks[kb] = SKW'(s3_ksum[s3_kx[kb]]);
    // stage 5: the cell logits lgs[cx mod 3][cy * G3 + cx div 3], LGW bits (read, add, write in
    // one cycle; the decision, lgs_v's sign, in the control block)
    logic signed [LGW-1:0] lgs_q [3], lgs_b [3], lgs_v [3];
    for (genvar kb = 0; kb < 3; kb++) begin : g_lgs
        logic signed [LGW-1:0] lgs_mem [LDEPTH];
        assign lgs_q[kb] = lgs_mem[s4_la[kb]];
        assign lgs_b[kb] = s4_first[kb] ? bs_r : lgs_q[kb];
        assign lgs_v[kb] = lgs_b[kb] + LGW'(s4_ktot[kb]);
        always_ff @(posedge clk)
            if (s4_v && s4_kxv[kb]) lgs_mem[s4_la[kb]] <= lgs_v[kb];
    end
    wire s_pipe_busy = s1_v || s2_v || s3_v || s4_v;
    // stage 5's decisions into spat: cell s4_ctr - 1 + d (d < 2) is written with s5_val[d] when
    // s5_en[d]. s4_ctr as a split one-hot (high / low bits), each write's enable in its low part
    // (issue 16: a cell's write is an AND of two decode bits, not an NCB-bit compare per cell)
    localparam int SLB = NCB / 2;
    localparam int SHB = NCB - SLB;
    logic [1:0] s5_en, s5_val;
    (* keep *) logic [(1 << SHB)-1:0] s5_hi;
    (* keep *) logic [(1 << SLB)-1:0] s5_lo0, s5_lo1;
    always_comb begin
        logic [2:0] dk, dv;       // per cell bank: decided now, its decision
        for (int kb = 0; kb < 3; kb++) begin
            dk[kb] = s4_kxv[kb] && s4_last[kb];
            dv[kb] = !lgs_v[kb][LGW-1];
        end
        for (int d = 0; d < 2; d++) begin
            s5_en[d] = s4_v && dk[s4_kbo[d]];
            s5_val[d] = dv[s4_kbo[d]];
        end
        for (int a = 0; a < (1 << SHB); a++) s5_hi[a] = (32'(s4_ctr) >> SLB) == 32'(a);
        for (int b = 0; b < (1 << SLB); b++) begin
            s5_lo0[b] = s5_en[0] && (32'(s4_ctr) & 32'((1 << SLB) - 1)) == 32'(b);
            s5_lo1[b] = s5_en[1] && (32'(s4_ctr) & 32'((1 << SLB) - 1)) == 32'(b);
        end
    end

    // ------------------------------------------------------------------ arithmetic
    // the products at their exact widths (SW, AW, RW above); int64 wrap as the reference's
    // P = (S*R + 2^(RB-F-1)) >>> (RB-F) of the product S*R (mm: exact, SW + RW + 1 <= SW + MAW bits)
    function automatic logic signed [63:0] pool_of(input logic signed [63:0] p);
        logic signed [63:0] t;
        t = p + (64'sd1 <<< (SH - 1));
        return t >>> SH;
    endfunction
    function automatic logic signed [AW+31:0] hid_prod(input logic signed [AW-1:0] a, input logic signed [31:0] m);
        return a * m;
    endfunction
    // the sum of GL row products as a balanced tree (log2 GL adds deep). A row product is an
    // int16 weight times Pt (PVW bits) or h (< 2^15), or an int8 head weight times a channel
    // sum (SW bits): it fits RPB signed bits, the sum of GL RPB + GLL (issue 16: the tree at
    // that width, sign-extended to int64)
    localparam int RPB = ((PVW + 15 > SW + 7) ? PVW + 15 : SW + 7) + 1;
    function automatic logic signed [63:0] row_sum(input logic signed [63:0] v [GL]);
        logic signed [RPB+GLL-1:0] t [GL];
        for (int l = 0; l < GL; l++) t[l] = (RPB + GLL)'(signed'(RPB'(v[l])));
        for (int w = GL; w > 1; w = (w + 1) / 2) begin
            for (int i = 0; i < w / 2; i++) t[i] = t[2 * i] + t[2 * i + 1];
            if (w % 2 == 1) t[w / 2] = t[w - 1];
        end
        return 64'(t[0]);
    endfunction
    // the row sums' base (a head row starts from its class's bias, written into the m1 banks
    // before), a variable apart from the add
    logic signed [63:0] rs_base;
    assign rs_base = g_hb0 ? g_bias : racc;
    // The segment's elements: element lp + l of the beat (2^esz bytes, mod the beat's elements)
    // is at byte l * 2^esz of the beat rotated right by lp * 2^esz bytes (2^esz divides AB), so
    // each lane takes fixed bytes of one rotated beat (issue 16: one AB-byte rotator instead of
    // a run-time element mux per lane and element size); a segment never runs past its beat,
    // so lane l only ever holds elements of the sizes that fit l + 1 times into a beat
    logic [DG_AXI_DATA_BITS-1:0] e_rot;
    logic [ABW-1:0] e_rb;             // lp * 2^esz mod AB, registered with the beat (stage R)
    // The GL-lane streams (w1, w2, the spatial taps: int16; the head's W: int8): bank b takes
    // lane (b - c) mod GL, c the segment's column. With 2 GL = AB that is bytes 2b, 2b + 1 of
    // the beat rotated right by 2 (lp - c) (int16), or byte b, or b + GL when b < c mod GL, of
    // the beat rotated by lp - c (int8); stage F holds each bank's element (issue 16: no lane
    // mux in front of the shared multiplier)
    localparam bit WROT = 2 * GL == AB;
    // With WROT the 1- and 2-byte streams and the 4-byte streams into the banks take their
    // elements from e_wrot below (f_xw, f_xb): f_x is read for 4- and 8-byte elements only
    // (the reciprocal / mask checks, bs, o1, b2), whose rotation lp * 2^esz is a multiple of
    // 4 bytes, so e_rot rotates by whole words (issue 16: a 4:1 instead of an AB:1 byte mux)
    wire [ABW-1:0] e_rbx = WROT ? {e_rb[ABW-1:2], 2'b00} : e_rb;
    assign e_rot = DG_AXI_DATA_BITS'({e_data, e_data} >> {e_rbx, 3'b000});
    logic [ABW-1:0] e_rw;             // (lp - c mod GL) * 2^esz mod AB (stage R); bins, masks: bn_lo
    logic [GL-1:0] e_whi;             // int8: bank b takes byte b + GL of the rotated beat
    logic [DG_AXI_DATA_BITS-1:0] e_wrot;
    assign e_wrot = DG_AXI_DATA_BITS'({e_data, e_data} >> {e_rw, 3'b000});
    logic signed [15:0] f_xw [GL];    // stage F: bank b's element (int8 sign-extended)
    // The 4-byte streams into the lane banks (sums, reciprocals, m1, the head's biases): bank
    // b's element (lane f_bl[b]) is word b mod (AB / 4) of the same rotated beat, i.e. f_xw
    // of banks 2b, 2b + 1 (mod GL) when 2 GL = AB (issue 16: no lane mux per bank)
    logic [31:0] f_xb [GL];
    always_comb
        for (int b = 0; b < GL; b++)
            f_xb[b] = WROT ? {f_xw[(2 * b + 1) % GL], f_xw[(2 * b) % GL]} : f_x[ABL'(f_bl[b])][31:0];
`ifndef SYNTHESIS
    always_ff @(posedge clk)
        if (!rst && f_v && (f_kind == K_SUMS || f_kind == K_RECIP || f_kind == K_M1 || f_kind == K_HB))
            for (int b = 0; b < GL; b++)
                if (f_bv[b] && f_xb[b] != f_x[ABL'(f_bl[b])][31:0])
                    $error("dg_gate: bank %0d's element of the 4-byte stream", b);
`endif
    function automatic logic signed [63:0] lane_elem(input logic [DG_AXI_DATA_BITS-1:0] rb,
                                                     input int l, input logic [1:0] esz,
                                                     input logic sgn);
        case (esz)
            2'd0: return sgn ? 64'(signed'(rb[l * 8 +: 8])) : 64'(rb[l * 8 +: 8]);
            2'd1: if (l < AB / 2) return sgn ? 64'(signed'(rb[(l % (AB / 2)) * 16 +: 16]))
                                             : 64'(rb[(l % (AB / 2)) * 16 +: 16]);
            2'd2: if (l < AB / 4) return sgn ? 64'(signed'(rb[(l % (AB / 4)) * 32 +: 32]))
                                             : 64'(rb[(l % (AB / 4)) * 32 +: 32]);
            default: if (l < AB / 8) return rb[(l % (AB / 8)) * 64 +: 64];
        endcase
        return 64'sd0;
    endfunction
    function automatic logic big(input logic signed [63:0] v);
        return v >= LIM || v <= -LIM;
    endfunction

    // ------------------------------------------------------------------ stream segment
    logic [31:0] seg_n;
    logic seg_row_end, seg_beat_end, seg_last;
    logic [31:0] s_rl_next, s_nl_next;
    logic [15:0] s_lp_next;           // (the beat's lane and elements left after the segment:
    logic [SEGW:0] s_bl_next;         // each candidate's in parallel with the minimum)
    // The segment is the smallest of four counts: s_bl (elements left in the beat), s_cap (the
    // kind's lane limit: GL for the banked streams), rl_s / nl_s (elements left in the row / the
    // stream, saturated at SAT = 2^SEGW > AB: registers kept beside the 32-bit down-counters
    // s_rl / s_nl, so no wide compare is on this path). The four "is the smallest" tests run
    // in parallel; the row / stream / beat ends are the counts that equal the segment.
    localparam logic [SEGW:0] SAT = (SEGW + 1)'(1 << SEGW);
    logic [SEGW:0] rl_s, nl_s, rowlen_s;
    logic [SEGW:0] s_bpb;             // elements per beat of the stream
    function automatic logic [SEGW:0] sat(input logic [31:0] v);
        return (v[31:SEGW] != 0) ? SAT : (SEGW + 1)'(v[SEGW-1:0]);
    endfunction
    always_comb begin
        logic bl_min, cap_min, rl_min, nl_min;
        logic [SEGW:0] n;
        bl_min = s_bl <= s_cap && s_bl <= rl_s && s_bl <= nl_s;
        cap_min = s_cap <= rl_s && s_cap <= nl_s;
        rl_min = rl_s <= s_bl && rl_s <= s_cap && rl_s <= nl_s;
        nl_min = nl_s <= s_bl && nl_s <= s_cap && nl_s <= rl_s;
        n = bl_min ? s_bl : cap_min ? s_cap : rl_min ? rl_s : nl_s;
        seg_n = 32'(n);
        seg_row_end = rl_min;
        seg_last = nl_min;
        seg_beat_end = bl_min || nl_min;
        // the 32-bit counts less each candidate in parallel with the minimum (no subtract
        // after its select; the row's count restarts at a row end)
        s_rl_next = rl_min ? s_rowlen : bl_min ? s_rl - 32'(s_bl) : cap_min ? s_rl - 32'(s_cap)
                                                                  : s_rl - 32'(nl_s);
        // (a segment of nl_s elements ends the stream: s_nl / nl_s are set again for the next
        // one, so their next values need not cover it; issue 16: one select less)
        s_nl_next = bl_min ? s_nl - 32'(s_bl) : cap_min ? s_nl - 32'(s_cap) : s_nl - 32'(rl_s);
        // (not at the beat's end the segment is s_cap's or rl_s's: the minimum is neither
        // s_bl nor nl_s then)
        s_lp_next = seg_beat_end ? 16'd0 : cap_min ? s_lp + 16'(s_cap) : s_lp + 16'(rl_s);
        s_bl_next = seg_beat_end ? s_bpb : cap_min ? s_bl - s_cap : s_bl - rl_s;
    end
`ifndef SYNTHESIS
    // (simulation: the candidates' lane and beat counts are the segment's)
    always_ff @(posedge clk)
        if (!rst && st == G_RDATA && rd_valid
            && (s_lp_next != (seg_beat_end ? 16'd0 : s_lp + 16'(seg_n))
                || s_bl_next != (seg_beat_end ? s_bpb : s_bl - (SEGW + 1)'(seg_n))))
            $error("dg_gate: the segment's lane / beat count");
`endif
    // the saturated counts after this segment (s_rl / s_nl >= 2^(SEGW+1): still >= SAT after it);
    // the low bits less each of the four candidate counts in parallel with the minimum, then
    // the one of the segment's count selected (no subtract after the minimum's select)
    logic [SEGW:0] rl_s_next, nl_s_next;
    // (each candidate saturated before the select: sat of the difference, SAT when the
    // 32-bit count is >= 2^(SEGW+1); no logic after the minimum's select)
    function automatic logic [SEGW:0] sat_d(input logic hi, input logic [SEGW:0] d);
        return (hi || d[SEGW]) ? SAT : d;
    endfunction
    always_comb begin
        logic [SEGW:0] r_bl, r_cap, r_nl, n_bl, n_cap, n_rl;
        logic bl_m, cap_m, rl_m, r_big, n_big;
        r_big = s_rl[31:SEGW+1] != 0;
        n_big = s_nl[31:SEGW+1] != 0;
        r_bl = sat_d(r_big, s_rl[SEGW:0] - s_bl);
        r_cap = sat_d(r_big, s_rl[SEGW:0] - s_cap);
        r_nl = sat_d(r_big, s_rl[SEGW:0] - nl_s);
        n_bl = sat_d(n_big, s_nl[SEGW:0] - s_bl);
        n_cap = sat_d(n_big, s_nl[SEGW:0] - s_cap);
        n_rl = sat_d(n_big, s_nl[SEGW:0] - rl_s);
        // (the segment's count: s_bl, else s_cap, else rl_s, else nl_s, as seg_n above)
        bl_m = s_bl <= s_cap && s_bl <= rl_s && s_bl <= nl_s;
        cap_m = s_cap <= rl_s && s_cap <= nl_s;
        rl_m = rl_s <= s_bl && rl_s <= s_cap && rl_s <= nl_s;
        // (rl_m: the row ends, rowlen_s)
        rl_s_next = rl_m ? rowlen_s : bl_m ? r_bl : cap_m ? r_cap : r_nl;
        nl_s_next = bl_m ? n_bl : cap_m ? n_cap : n_rl;   // (nl_s the segment: the stream ends)
    end

    // the sums: acc[c] += x as a SUMS beat arrives (the first row of a fresh stream: acc = x),
    // so the update lands at the end of the cycle, as for registers
    // the sums written the cycle before (the read of this stage F was issued before they landed)
    logic [SW-1:0] ac_fw_wd [GL];
    logic [SW-1:0] ac_rd [GL];        // stage F: the sums of bank b at f_rc[b]
    // the add's operands as variables of their own (issue 16: a select written inside an add
    // went onto the carry chain's DI at two LUTs per bit)
    logic signed [SW-1:0] ac_base [GL];   // the sums so far (0: a fresh stream's first row)
    logic signed [31:0] ac_x [GL];        // bank b's int32 element
    always_ff @(posedge clk) begin
        ac_fw_wd <= ac_wd;            // (f_fw: stage E's compare of the rows)
    end
    always_comb begin
        for (int b = 0; b < GL; b++) begin
            ac_rd[b] = f_fw[b] ? ac_fw_wd[b] : ac_q[b];
            ac_base[b] = (acc_fresh && f_row == 0) ? '0 : signed'(ac_rd[b]);
            ac_x[b] = signed'(f_xb[b]);
        end
    end
    // (the address and data whether or not the bank writes: the write enable gates them, and
    // ac_fw_wd is read only after a write, f_fw; issue 16: no zeroing after the adder)
    always_comb begin
        for (int b = 0; b < GL; b++) begin
            ac_we[b] = f_v && f_kind == K_SUMS && f_bv[b];
            ac_wa[b] = ac_AW'(f_rc[b]);
            ac_wd[b] = SW'(ac_base[b] + SW'(ac_x[b]));
        end
    end

    // ------------------------------------------------------------------ AXI outputs
    always_comb begin
        rcmd_valid = st == G_RCMD;
        rcmd_addr = s_addr & ~64'(AB - 1);
        rcmd_beats = s_beats;
        rd_ready = st == G_RDATA && rd_valid && seg_beat_end;
        wcmd_valid = st == G_WCMD;
        wcmd_addr = w_addr;
        wcmd_beats = w_beats;
    end

    // ------------------------------------------------------------------ channel decisions
    // The channel gate's decisions (max_out_channels bits: the masks job's channel bitmap,
    // gate-2's mask_c2, the channel lists) as 32-bit words in WPB RAM banks (word w in bank
    // w mod WPB, row w div WPB; issue 16: as a bit vector written by element and read by word
    // and bit at run-time indices, its LUTs grew with max_out_channels). Written from stage G
    // (the b2 decisions of stage F, ascending channels from 0, at most LN8 <= 32 per cycle, so
    // one word or two consecutive ones in different banks; the word being filled is kept in
    // ch_acc and written through); read through a registered port: a word job's beat (the
    // next one, w_rd, as the logits); the list scan reads its channel's bit (ch_b0 / ch_b1). Words from
    // ch_n = ceil(out_c / 32) on read as 0 (never written in this record); RUN_FLAGS.DENSE
    // (ch_dense) reads every channel below out_c as on.
    localparam int WPB = AB / 4;                                  // 32-bit words per beat
    localparam int WPBL = $clog2(WPB);
    localparam int CHW = (MAXO + 31) / 32;
    localparam int CH_D = (CHW + 2 * WPB - 2) / WPB;              // (positions up to CHW + WPB - 2: ch_rot)
    localparam int CH_AW = (CH_D > 1) ? $clog2(CH_D) : 1;
    logic          cb_v;                  // stage G: the b2 decisions of stage F
    logic [31:0]   cb_e0;                 // (channel of lane 0, lanes, decisions)
    logic [SEGW-1:0] cb_n;
    logic [LN8-1:0] cb_b;
    logic          ch_dense;
    logic [31:0]   ch_acc;                // the bits of the word being filled
    logic [15:0]   ch_n;
    logic [WPB-1:0] ch_we;
    logic [CH_AW-1:0] ch_wa [WPB];
    logic [31:0]   ch_wd [WPB];
    logic [CH_AW-1:0] ch_ra [WPB];
    logic [31:0]   ch_q [WPB];
    // the list scan's channel bits (issue 16: no bank and bit mux behind a register on the list
    // scan's paths, no scan decode in front of the reads): the bits of both candidates of the
    // next cycle, w_scan's and w_scan1's (their words at positions ch_p0 / ch_p1, below), read
    // through two asynchronous ports into ch_b0 / ch_b1, the one taken selected after them
    logic [15:0] ch_p0, ch_p1;
    logic [WPB-1:0] ch_a0, ch_a1;
    // Word w of the channel bitmap is kept at position w + ch_rot (bank (w + ch_rot) mod WPB,
    // row (w + ch_rot) div WPB), ch_rot = the gate record's tile bitmap words mod WPB (0 for
    // gate-2): in the masks job, where channel word cw is beat word (cw + nwt) mod WPB, beat
    // word k is then always bank k (issue 16: no bank mux per word of the beat)
    logic [WPBL-1:0] ch_rot;
    always_ff @(posedge clk) ch_rot <= is_g2 ? '0 : WPBL'(g_nwt);
    for (genvar k = 0; k < WPB; k++) begin : g_ch
        logic [31:0] mem [CH_D];
        logic [31:0] q_r;
        always_ff @(posedge clk) begin
            if (ch_we[k]) mem[ch_wa[k]] <= ch_wd[k];
            q_r <= mem[ch_ra[k]];
        end
        assign ch_q[k] = q_r;
        assign ch_a0[k] = mem[CH_AW'(ch_p0 >> WPBL)][w_scan[4:0]];
        assign ch_a1[k] = mem[CH_AW'(ch_p1 >> WPBL)][w_scan1[4:0]];
    end
    logic ch_b0, ch_b1, ch_adv;
    always_ff @(posedge clk) begin
        ch_b0 <= ch_a0[WPBL'(ch_p0)];
        ch_b1 <= ch_a1[WPBL'(ch_p1)];
        ch_adv <= st == G_WDATA && w_kind == 2'd1 && !lb_pend && w_more;   // (w_scan moves on)
    end
    always_ff @(posedge clk) begin
        ch_n <= 16'((32'(cg_out_c) + 32'd31) >> 5);
        ch_we <= '0;
        for (int k = 0; k < WPB; k++) begin
            ch_wa[k] <= '0;
            ch_wd[k] <= '0;
        end
        if (cb_v) begin
            logic [31:0] wa, wb, wi, el, pi;
            wi = cb_e0 >> 5;
            pi = wi + 32'(ch_rot);                         // (its position)
            wa = (cb_e0[4:0] != 5'd0) ? ch_acc : 32'd0;   // ascending: the bits before e0
            wb = 32'd0;
            for (int l = 0; l < LN8; l++) begin
                if (l < 32'(cb_n)) begin
                    logic [31:0] e;
                    e = cb_e0 + 32'(l);
                    if ((e >> 5) == wi) wa[e[4:0]] = cb_b[l];
                    else wb[e[4:0]] = cb_b[l];
                end
            end
            el = cb_e0 + 32'(cb_n) - 32'd1;
            ch_we[pi[WPBL-1:0]] <= 1'b1;
            ch_wa[pi[WPBL-1:0]] <= CH_AW'(pi >> WPBL);
            ch_wd[pi[WPBL-1:0]] <= wa;
            if ((el >> 5) != wi) begin
                ch_we[WPBL'(pi + 32'd1)] <= 1'b1;
                ch_wa[WPBL'(pi + 32'd1)] <= CH_AW'((pi + 32'd1) >> WPBL);
                ch_wd[WPBL'(pi + 32'd1)] <= wb;
                ch_acc <= wb;
            end else ch_acc <= wa;
        end
    end
    // read addresses: a word job's beat w_rd, else the word of the list scan's next channel.
    // Beat w_rd's channel words are [bw, bw + WPB), bw = w_rd * WPB - off (off: the tile
    // bitmap's words in the masks job, else 0), at positions bw + ch_rot = (w_rd - c) * WPB + k
    // (c = off div WPB, as ch_rot = off mod WPB): bank k at row w_rd - c, kept for both beats
    // w_rd can be (ch_r0: w_nx, ch_r1: w_nx + 1; issue 16: no word arithmetic behind w_rd's
    // select); the list scans read through their own ports (ch_a0 / ch_a1 above)
    logic [CH_AW-1:0] ch_r0 [WPB], ch_r1 [WPB];
    logic [CH_AW-1:0] ch_c [WPB];     // c of the masks job (the record is held: registered)
    always_ff @(posedge clk)
        for (int k = 0; k < WPB; k++) ch_c[k] <= CH_AW'(g_nwt >> WPBL);
    always_comb
        for (int k = 0; k < WPB; k++)
            // (G_WJOB: row 0 of every bank, the first beat of either job kind, the next job's
            // w_kind / w_sel not set yet)
            ch_ra[k] = (st == G_WJOB) ? '0 : w_take ? ch_r1[k] : ch_r0[k];
`ifndef SYNTHESIS
    // (simulation: the kept rows are the word arithmetic they replace)
    always_ff @(posedge clk) begin
        if (!rst && w_kind == 2'd0 && (st == G_WDATA || st == G_WCMD)) begin
            for (int k = 0; k < WPB; k++) begin
                logic signed [31:0] bw;
                bw = signed'(32'(w_rd) << WPBL) - ((w_sel == 2'd2) ? 32'sd0 : signed'(g_nwt))
                     + signed'(32'(ch_rot)) + 32'sd1 * k;           // (word k's position)
                if (ch_ra[k] != CH_AW'(bw >>> WPBL) || WPBL'(bw) != WPBL'(k))
                    $error("dg_gate: channel word row of bank %0d", k);
            end
        end
        if (!rst && w_kind == 2'd1 && st == G_WDATA && ch_p0 != (w_scan >> 5) + 16'(ch_rot))
            $error("dg_gate: the list scan's channel word position");
        if (!rst && w_kind == 2'd1 && st == G_WDATA && w_more && 32'(w_scan) < NCELL
            && sw_win[0] != spat[32'(w_scan) % NCELL])
            $error("dg_gate: the list scan's tile bit");
        if (!rst && st == G_TSCAN && 64'(t2_t) < g2_n && sw_win[0] != spat[32'(t2_t) % NCELL])
            $error("dg_gate: the tile scan's bit");
        if (!rst && (st == G_WDATA || st == G_WCMD))
            for (int b = 0; b < GL; b++)
                if (lg_ra[b] != lg_AW'(brow(32'(w_rd) * 32'(AB / 8), b)))
                    $error("dg_gate: logits row of bank %0d", b);
    end
`endif
    // the dense mask's partial last word (the record is held: registered)
    logic [31:0] ch_pm;
    always_ff @(posedge clk) ch_pm <= (32'd1 << cg_out_c[4:0]) - 32'd1;
    // the list scan's channel w_scan
    // (only read while w_scan < w_limit = out_c: the channel lists' limit)
    wire ch_bit = ch_dense || (ch_adv ? ch_b1 : ch_b0);

    // the word jobs' beat w_nx (the next one offered), registered into wq_* when the
    // command is accepted and after each beat: the write channel is driven from registers
    logic [DG_AXI_DATA_BITS-1:0] wn_data, wq_data;
    // layer_count - 1, the head's own log entry: as (beat, word in the beat)
    logic [31:0] lcm1_beat, lcm1_word;
    always_ff @(posedge clk) begin
        lcm1_beat <= (a_layer_count - 32'd1) >> $clog2(WPB);
        lcm1_word <= (a_layer_count - 32'd1) & 32'(WPB - 1);
    end
    // What word k of beat w_nx is, decoded a cycle ahead from w_rd (= w_nx of the next cycle,
    // the address the ch / lg / cycle-log reads take; issue 16: the word index arithmetic and its
    // compares are off the beat's path). Word w = w_nx * WPB + k is the tile bitmap's word w
    // (spat) or the channel bitmap's word w (gate-2's mask_c2); in the masks job word cw = w - nwt
    // of the channel bitmap when cw >= 0. A channel word is 0 from ch_n = ceil(out_c / 32) on
    // (never written in this record); DENSE: all on below out_c. Both readings of the word are
    // decoded (in G_WJOB the next job's w_sel is not set yet): *w for w, *c for cw.
    logic [WPB-1:0] wx_okw, wx_fullw, wx_cpos, wx_okc, wx_fullc, wx_head, wx_log, wx_tfull, wx_tok;
    logic [31:0] wx_sp [WPB];             // spat's word w (spat is not written during a job)
    logic [TLW0-1:0] wx_lgl [WPB];        // the logits bank of entry w div 2
    logic [15:0] ch_ow;                   // out_c div 32 (the record is held: registered)
    always_ff @(posedge clk) ch_ow <= cg_out_c >> 5;
    // Each compare of word w = beat * WPB + k with a count X as one of the beat with a threshold:
    // w < X <=> beat < ceil((X - k) / WPB) = (X + WPB - 1 - k) >> WPBL (0 when X <= k), and
    // cw = w - nwt >= 0 <=> beat >= (nwt + WPB - 1 - k) >> WPBL (issue 16: no word arithmetic
    // and no 32-bit compare behind the beat; the thresholds derive from the held record)
    function automatic logic [31:0] wthr(input logic [31:0] x, input int k);
        return (x + 32'(WPB - 1 - k)) >> WPBL;
    endfunction
    logic [31:0] wt_okw [WPB], wt_fullw [WPB], wt_cpos [WPB], wt_okc [WPB], wt_fullc [WPB];
    logic [31:0] wt_tfull [WPB], wt_tok [WPB];   // DENSE tile bitmap: w < N div 32, w < ceil(N / 32)
    logic [31:0] t_pm;                    // DENSE tile bitmap: the partial last word
    logic [WPB-1:0] wt_hk;                // k is the head's own entry's word
    always_ff @(posedge clk) begin
        for (int k = 0; k < WPB; k++) begin
            wt_okw[k] <= wthr(32'(ch_n), k);
            wt_fullw[k] <= wthr(32'(ch_ow), k);
            wt_cpos[k] <= wthr(g_nwt, k);
            wt_okc[k] <= wthr(32'(ch_n) + g_nwt, k);
            wt_fullc[k] <= wthr(32'(ch_ow) + g_nwt, k);
            wt_hk[k] <= lcm1_word == 32'(k);
            wt_tfull[k] <= wthr(32'(g_n >> 5), k);
            wt_tok[k] <= wthr(g_nwt, k);
        end
        t_pm <= (32'd1 << g_n[4:0]) - 32'd1;
    end
    // the head's own log entry is in beat lcm1_beat: hd_d = lcm1_beat - w_nx counted down as the
    // beats are taken, with "w_nx / w_nx + 1 is that beat" as registers (issue 16: no 32-bit
    // compare behind the beat's select)
    logic [31:0] hd_d;
    logic hd_z0, hd_z1, hd_b0;
    always_ff @(posedge clk) begin
        hd_b0 <= lcm1_beat == 32'd0;
        if (st == G_WJOB) begin               // (a job starts at beat 0)
            hd_d <= lcm1_beat;
            hd_z0 <= lcm1_beat == 32'd0;
            hd_z1 <= lcm1_beat == 32'd1;
        end else if (w_take) begin
            hd_d <= hd_d - 32'd1;
            hd_z0 <= hd_z1;
            hd_z1 <= hd_d == 32'd2;
        end
    end
    // The compares "beat < threshold" of beat w_rd, kept as w_nx moves on (issue 16: one
    // equality per flag instead of two compares, one per beat w_rd can be): a job starts at
    // beat 0 (0 < T iff T != 0), and the beat taken moves from w_nx to w_nx + 1, so
    // w_nx + 1 < T iff w_nx < T and w_nx + 1 != T (>= T: w_nx >= T or w_nx + 1 == T). The
    // thresholds derive from the held record (stable while the jobs run). wl_okc / wl_fullc:
    // the channel word below ch_n / out_c div 32; wx_okc / wx_fullc add cw >= 0 (wx_cpos).
    logic [WPB-1:0] wl_okc, wl_fullc;
    function automatic logic wlt(input logic lt, input logic [31:0] t);
        return (st == G_WJOB) ? t != 32'd0 : w_take ? lt && 32'(w_nx1) != t : lt;
    endfunction
    always_ff @(posedge clk) begin
        for (int k = 0; k < WPB; k++) begin
            logic [31:0] w;
            w = 32'({w_rd, WPBL'(k)});                   // w_rd * WPB + k
            wx_okw[k] <= wlt(wx_okw[k], wt_okw[k]);
            wx_fullw[k] <= wlt(wx_fullw[k], wt_fullw[k]);
            wx_cpos[k] <= (st == G_WJOB) ? wt_cpos[k] == 32'd0
                        : w_take ? wx_cpos[k] || 32'(w_nx1) == wt_cpos[k] : wx_cpos[k];
            wl_okc[k] <= wlt(wl_okc[k], wt_okc[k]);
            wl_fullc[k] <= wlt(wl_fullc[k], wt_fullc[k]);
            wx_head[k] <= ((st == G_WJOB) ? hd_b0 : w_take ? hd_z1 : hd_z0) && wt_hk[k];
            wx_log[k] <= wlt(wx_log[k], 32'((DG_MAX_LAYERS + WPB - 1 - k) >> WPBL));
            wx_tfull[k] <= wlt(wx_tfull[k], wt_tfull[k]);
            wx_tok[k] <= wlt(wx_tok[k], wt_tok[k]);
            wx_sp[k] <= spat[w * 32 +: 32];
            wx_lgl[k] <= TLW0'(lane(w >> 1));
        end
    end
    always_comb
        for (int k = 0; k < WPB; k++) begin
            wx_okc[k] = wx_cpos[k] && wl_okc[k];
            wx_fullc[k] = wx_cpos[k] && wl_fullc[k];
        end
`ifndef SYNTHESIS
    // (simulation: the flags are the compares of beat w_nx with the thresholds, while a word
    // job offers its beats)
    always_ff @(posedge clk)
        if (!rst && (st == G_WCMD || st == G_WDATA) && w_kind != 2'd1)
            for (int k = 0; k < WPB; k++) begin
                logic [31:0] b;
                b = 32'(w_nx);
                if ({wx_okw[k], wx_fullw[k], wx_cpos[k], wl_okc[k], wl_fullc[k], wx_log[k],
                     wx_tfull[k], wx_tok[k]}
                    != {b < wt_okw[k], b < wt_fullw[k], b >= wt_cpos[k], b < wt_okc[k],
                        b < wt_fullc[k], b < 32'((DG_MAX_LAYERS + WPB - 1 - k) >> WPBL),
                        b < wt_tfull[k], b < wt_tok[k]})
                    $error("dg_gate: word %0d's flags of beat %0d", k, w_nx);
            end
`endif
    logic [AB-1:0] wn_strb, wq_strb;
    localparam int LEPB = AB / 8;                                  // logits entries per beat
    localparam bit LG_FIX = LEPB >= 1 && GL % LEPB == 0;
    always_comb begin
        wn_data = '0;
        for (int i = 0; i < AB; i++) wn_strb[i] = 33'(i) < w_rem;
        for (int k = 0; k < WPB; k++) begin
            logic use_c, ok, full;
            // (masks: word w of the tile bitmap, or word cw of the channel bitmap if cw >= 0)
            use_c = w_sel == 2'd2 || (w_sel == 2'd0 && wx_cpos[k]);
            ok = (w_sel == 2'd2) ? wx_okw[k] : wx_okc[k];
            full = (w_sel == 2'd2) ? wx_fullw[k] : wx_fullc[k];
            // the word's source as one-hot terms of the word (issue 16: an AND-OR per bit of
            // the sources, their selects shared by the word's 32 bits, instead of a priority
            // chain per bit). Masks (w_kind 0): channel word cw when use_c (0 past ch_n; DENSE:
            // all on, or the partial last word), else tile word w (DENSE: full / partial / 0);
            // logits (2): entry w_nx * LEPB + k div 2 (when LEPB divides GL its bank's low bits
            // are k div 2, so only the bank's high bits are a run-time select); else the cycle
            // log (the head's own entry, then the sequencer's log, then 0).
            begin
                logic m0, m2, md, s_chq, s_one, s_chpm, s_sp, s_tpm, s_head, s_cyc;
                logic [31:0] lgw;
                m0 = w_kind == 2'd0;
                m2 = w_kind == 2'd2;
                md = !m0 && !m2;
                s_chq = m0 && use_c && ok && !ch_dense;
                s_chpm = m0 && use_c && ok && ch_dense && !full;
                s_one = m0 && (use_c ? ok && ch_dense && full : ch_dense && wx_tfull[k]);
                s_sp = m0 && !use_c && !ch_dense;
                s_tpm = m0 && !use_c && ch_dense && !wx_tfull[k] && wx_tok[k];
                s_head = md && wx_head[k];
                s_cyc = md && !wx_head[k] && wx_log[k];
                lgw = lg_q[LG_FIX ? TLW0'((32'(wx_lgl[k]) & ~32'(LEPB - 1)) | 32'(k / 2))
                                  : wx_lgl[k]][(k & 1) * 32 +: 32];
                wn_data[k * 32 +: 32] = ({32{s_chq}} & ch_q[k]) | {32{s_one}} | ({32{s_chpm}} & ch_pm)
                                      | ({32{s_sp}} & wx_sp[k]) | ({32{s_tpm}} & t_pm)
                                      | ({32{m2}} & lgw) | ({32{s_head}} & head_log)
                                      | ({32{s_cyc}} & cyc_q[k * 32 +: 32]);
            end
        end
    end
    always_comb begin
        wd_valid = 1'b0;
        wd_data = '0;
        wd_strb = '0;
        if (st == G_WDATA) begin
            if (w_kind == 2'd1) begin
                wd_valid = lb_pend;
                wd_data = lb_data;
                for (int i = 0; i < AB; i++) wd_strb[i] = 32'(i) < 2 * 32'(lb_cnt);
            end else begin
                wd_valid = 1'b1;
                wd_data = wq_data;
                wd_strb = wq_strb;
            end
        end
    end

    // ------------------------------------------------------------------ control
    // the write jobs: what job `job` writes (offset in WORK, bytes, kind, selection, list limit
    // and length), selected before the address and size arithmetic (issue 16: one adder each,
    // not one per job)
    logic        jb_on, jb_empty;
    logic [31:0] jb_off;
    logic [63:0] jb_nbytes;
    logic [1:0]  jb_kind, jb_sel;
    logic [15:0] jb_limit, jb_total;
    // each job's "no bytes" test registered (issue 16: no compare behind the job decode into
    // st): from the held record and the counts cnt_t / cnt_c, which S_WRITE copies into nt / nc
    // / nc2 as the jobs start and which no job changes (simulation check below)
    logic [15:0] jq_empty;
    always_ff @(posedge clk) begin
        jq_empty <= '1;
        jq_empty[0] <= g_n == 0 && g_out_c == 0;
        jq_empty[1] <= cnt_t == 0;
        jq_empty[2] <= cnt_t == 0;
        jq_empty[3] <= cnt_c == 0;
        jq_empty[4] <= cnt_c == 0;
        jq_empty[5] <= !g_res_list || g_n == 64'(cnt_t);
        jq_empty[6] <= g_n == 0;
        jq_empty[8] <= h_classes == 0;
        jq_empty[9] <= a_layer_count == 0;
        jq_empty[11] <= g2_out_c == 0;
        jq_empty[12] <= cnt_c == 0;
        jq_empty[13] <= cnt_c == 0;
    end
    // each list job's "limit != 0" (the list scan's first "more" test) registered from the held
    // record (issue 16: no 16-bit zero test behind the job decode into w_more)
    logic [15:0] jq_lnz;
    always_ff @(posedge clk) begin
        jq_lnz <= '0;
        jq_lnz[1] <= 16'(g_n) != 16'd0;
        jq_lnz[2] <= 16'(g_n) != 16'd0;
        jq_lnz[3] <= g_out_c != 16'd0;
        jq_lnz[4] <= g_out_c != 16'd0;
        jq_lnz[5] <= 16'(g_n) != 16'd0;
        jq_lnz[12] <= g2_out_c != 16'd0;
        jq_lnz[13] <= g2_out_c != 16'd0;
    end
`ifndef SYNTHESIS
    always_ff @(posedge clk)
        if (!rst && st == G_WJOB && jb_on && jq_empty[job] != jb_empty)
            $error("dg_gate: job %0d's registered empty test", job);
    always_ff @(posedge clk)
        if (!rst && st == G_WJOB && jb_on && jq_lnz[job] != (jb_limit != 16'd0))
            $error("dg_gate: job %0d's registered limit test", job);
`endif
    always_comb begin
        jb_on = 1'b1;
        jb_off = 32'd0;
        jb_nbytes = 64'd0;
        jb_empty = 1'b1;
        jb_kind = 2'd0;
        jb_sel = 2'd0;
        jb_limit = 16'd0;
        jb_total = 16'd0;
        case (job)
            4'd0: begin               // the masks: tile bitmap, then channel bitmap
                jb_off = 32'(`DG_G(MASK_OFFSET));
                jb_nbytes = bm_bytes(g_n) + bm_bytes(64'(g_out_c));
                jb_empty = g_n == 0 && g_out_c == 0;
            end
            4'd1, 4'd2: begin         // conv1's / conv2's tile list
                jb_off = (job == 4'd1) ? 32'(`DG_G(C1_TILES_OFFSET)) : 32'(`DG_G(C2_TILES_OFFSET));
                jb_nbytes = 64'd2 * 64'(nt);
                jb_empty = nt == 0;
                jb_kind = 2'd1;
                jb_limit = 16'(g_n);
                jb_total = nt;
            end
            4'd3, 4'd4: begin         // conv1's out-channel / conv2's in-channel list
                jb_off = (job == 4'd3) ? 32'(`DG_G(C1_OUT_CH_OFFSET)) : 32'(`DG_G(C2_IN_CH_OFFSET));
                jb_nbytes = 64'd2 * 64'(nc);
                jb_empty = nc == 0;
                jb_kind = 2'd1;
                jb_sel = 2'd2;
                jb_limit = g_out_c;
                jb_total = nc;
            end
            4'd5: begin               // conv2's residual-only tiles
                jb_off = 32'(`DG_G(C2_RES_TILES_OFFSET));
                jb_nbytes = g_res_list ? 64'd2 * (g_n - 64'(nt)) : 64'd0;
                jb_empty = !g_res_list || g_n == 64'(nt);
                jb_kind = 2'd1;
                jb_sel = 2'd1;
                jb_limit = 16'(g_n);
                jb_total = 16'(g_n) - nt;
            end
            4'd6: begin               // conv2's tile bitmap
                jb_off = 32'(`DG_G(C2_BITMAP_OFFSET));
                jb_nbytes = bm_bytes(g_n);
                jb_empty = g_n == 0;
                jb_sel = 2'd1;
            end
            4'd8: begin               // the head's logits
                jb_off = 32'(`DG_H(LOGITS_OFFSET));
                jb_nbytes = 64'd8 * 64'(h_classes);
                jb_empty = h_classes == 0;
                jb_kind = 2'd2;
            end
            4'd9: begin               // the cycle log
                jb_off = 32'(`DG_H(LOG_OFFSET));
                jb_nbytes = 64'd4 * 64'(a_layer_count);
                jb_empty = a_layer_count == 0;
                jb_kind = 2'd3;
            end
            // gate-2 jobs 11..13: the mask_c2 bitmap, conv2's out-channel list, conv3's
            // in-channel list (program.gate2_work_writes)
            4'd11: begin
                jb_off = 32'(`DG_G2(MASK_OFFSET));
                jb_nbytes = bm_bytes(64'(g2_out_c));
                jb_empty = g2_out_c == 0;
                jb_sel = 2'd2;
            end
            4'd12, 4'd13: begin
                jb_off = (job == 4'd12) ? 32'(`DG_G2(C2_OUT_CH_OFFSET)) : 32'(`DG_G2(C3_IN_CH_OFFSET));
                jb_nbytes = 64'd2 * 64'(nc2);
                jb_empty = nc2 == 0;
                jb_kind = 2'd1;
                jb_sel = 2'd2;
                jb_limit = g2_out_c;
                jb_total = nc2;
            end
            default: jb_on = 1'b0;
        endcase
    end
    // a stream of na * nb elements of 2^esz bytes from base + off + 4 * ((mx * my + mz) * mw):
    // set up in G_SP1..3 (the products registered), then one command
    task automatic stream_at(input kind_t k, input logic [63:0] base, input logic [31:0] off,
                             input logic [15:0] mx, input logic [15:0] my, input logic [15:0] mz,
                             input logic [15:0] mw, input logic [16:0] na, input logic [16:0] nb,
                             input logic [1:0] esz, input logic [31:0] rowlen);
        s_kind <= k;
        sp_base <= base;
        sp_off <= off;
        sp_mx <= mx;
        sp_my <= my;
        sp_mz <= mz;
        sp_mw <= mw;
        sp_na <= na;
        sp_nb <= nb;
        s_esz <= esz;
        s_rowlen <= rowlen;
        st <= G_SP1;                  // (G_SP1 starts the counters: off this decision's path)
    endtask
    task automatic stream(input kind_t k, input logic [63:0] base, input logic [31:0] off,
                          input logic [16:0] na, input logic [16:0] nb,
                          input logic [1:0] esz, input logic [31:0] rowlen);
        stream_at(k, base, off, 16'd0, 16'd0, 16'd0, 16'd0, na, nb, esz, rowlen);
    endtask
    // (empty: nbytes == 0, as a test of the counts it is made of: no wide arithmetic before st)
    task automatic wjob(input logic [63:0] addr, input logic [63:0] nbytes, input logic empty,
                        input logic [1:0] kind, input logic [1:0] sel, input logic [15:0] limit,
                        input logic [15:0] total, input logic lnz);
        w_addr <= addr;
        w_rem <= 33'(nbytes);
        w_kind <= kind;
        w_sel <= sel;
        w_limit <= limit;
        w_total <= total;
        w_tm1 <= total - 16'd1;
        w_emitted <= 16'd0;
        w_scan <= 16'd0;
        w_scan1 <= 16'd1;
        ch_p0 <= 16'(ch_rot);
        ch_p1 <= 16'(ch_rot);
        sw_win <= spat[31:0];
        w_more <= lnz;                // (limit != 0)
        w_beat <= 24'd0;
        w_nx <= 24'd0;
        w_nx1 <= 24'd1;
        for (int k = 0; k < WPB; k++) begin
            ch_r0[k] <= CH_AW'(0) - ((sel == 2'd2) ? CH_AW'(0) : ch_c[k]);
            ch_r1[k] <= CH_AW'(1) - ((sel == 2'd2) ? CH_AW'(0) : ch_c[k]);
        end
        for (int b = 0; b < GL; b++) begin
            lg_r0[b] <= lg_AW'(brow(32'd0, b));
            lg_r1[b] <= lg_AW'(brow(32'(AB / 8), b));
        end
        w_beats <= 24'((nbytes + 64'(AB - 1)) >> ABL);
        w_bm1 <= 24'((nbytes + 64'(AB - 1)) >> ABL) - 24'd1;
        lb_cnt <= 16'd0;
        lb_pend <= 1'b0;
        lb_data <= '0;
        st <= empty ? G_WJOB : G_WCMD;
    endtask

    // the channel loops: start at channel 0 of in_c, one step of GL channels
    // (the loop over in_c, the gate record's or gate-2's: the first two steps' lanes and ends
    // from the held record; issue 16: no compare behind the loops' control decode)
    task automatic lc_start(input logic g2);
        lc <= 16'd0;
        lc_remn <= (g2 ? g2_in_c : g_in_c) - 16'(GL);
        lc_remnn <= (g2 ? g2_in_c : g_in_c) - 16'(2 * GL);
        lc_lv <= g2 ? lcs_lv[1][0] : lcs_lv[0][0];
        lc_lvn <= g2 ? lcs_lv[1][1] : lcs_lv[0][1];
        lc_last <= g2 ? lcs_last[1][0] : lcs_last[0][0];
        lc_lastn <= g2 ? lcs_last[1][1] : lcs_last[0][1];
    endtask
    task automatic lc_step();
        lc <= lc + 16'(GL);
        lc_remn <= lc_remnn;
        lc_remnn <= lc_remnn - 16'(GL);
        lc_lv <= lc_lvn;
        for (int l = 0; l < GL; l++) lc_lvn[l] <= 32'(l) < 32'(lc_remnn);
        lc_last <= lc_lastn;
        lc_lastn <= 32'(lc_remn) <= 2 * GL;
    endtask

    // The lanes' shared multiplier (issue 16: DSP48E2 count): per lane one MAW x SW-bit signed
    // product for the two uses that never overlap in time: the pool's S*R (stage Q: {0, R},
    // S) and the row products of fc1 (w1*Pt), fc2 (w2*h) and the head (W*S) in stage F (their
    // streams follow the bins; the weight as int16, an int8 head weight sign-extended, Pt sign-
    // and h zero-extended to SW).
    // Exact (SW >= PVW, 17), so equal to each product at its own width.
    // The hidden products A*m1 of the o1 stream (stage F, lane l < LN8) too, when the lanes and
    // widths allow (HID_MM): lanes 2l and 2l + 1 take A's low MAW - 1 bits (as unsigned) and
    // its high part (signed), both times m1 (the o1 stream follows fc1 and m1; issue 16: the
    // DSP48E2 count)
    localparam bit HID_MM = 2 * LN8 <= GL && AW + 1 <= 2 * MAW;
    // stage G: the high half's product, its bits that land below bit 64 after the shift by
    // MAW - 1 (issue 16: its add off the multiplier's cycle, a third term of v in stage G)
    localparam int PHW = 64 - (MAW - 1);
    logic [PHW-1:0] g_phh [LN8];
    logic signed [AW-1:0] hid_a [LN8];
    always_comb for (int j = 0; j < LN8; j++) hid_a[j] = signed'(am_q[f_lne[j % GL]]);
    // The operand selects on two select bits each, shared by all lanes: ma is rc_cur (q_v),
    // A (f_ko1, the hidden lanes) or f_xw; mb is ph_q (f_kw12), m1 (f_ko1, the hidden lanes)
    // or q_s (q_v and f_ko1 never meet, nor f_kw12 and f_ko1: stage F's kind).
    (* keep *) logic ma_s1, ma_s0, mb_s1, mb_s0;
    assign ma_s1 = q_v;
    assign ma_s0 = f_ko1;
    assign mb_s1 = f_kw12;
    assign mb_s0 = f_ko1;
    always_comb begin
        for (int l = 0; l < GL; l++) begin
            logic signed [MAW-1:0] a_rc, a_hid, a_x;
            logic signed [SW-1:0] b_ph, b_m1;
            a_rc = MAW'(signed'({1'b0, rc_cur}));
            // (A's low part unsigned, its high part)
            a_hid = (l % 2 == 0) ? MAW'(signed'({1'b0, hid_a[(l / 2) % LN8][MAW-2:0]}))
                                 : MAW'(hid_a[(l / 2) % LN8] >>> (MAW - 1));
            // (per bank l: the element of its lane f_bl2[l] (f_xw[l] with 2 GL = AB), times
            // the bank's entry; the row sum does not depend on the order of its products, and
            // the bank side has no lane mux in front of the multiplier; f_x is sign-extended)
            a_x = WROT ? MAW'(f_xw[l]) : MAW'(signed'(f_x[ABL'(f_bl2[l])][15:0]));
            b_ph = SW'(signed'(ph_q[l]));                       // (Pt, or h zero-extended)
            b_m1 = SW'(signed'(m1_q[f_lne[(l / 2) % LN8]]));
            // (q_s: the pool's sums, or the head's channel sums of bank l for stage F)
            if (HID_MM && l < 2 * LN8) begin
                ma[l] = ma_s1 ? a_rc : ma_s0 ? a_hid : a_x;
                mb[l] = mb_s1 ? b_ph : mb_s0 ? b_m1 : q_s[l];
            end else begin
                ma[l] = ma_s1 ? a_rc : a_x;
                mb[l] = mb_s1 ? b_ph : q_s[l];
            end
            begin
                logic signed [MAW+MCK+1:0] pc [MNC];
                logic [SW+MAW-1:0] r;
                for (int k = 0; k < MNC; k++) begin
                    logic signed [MCK:0] c;
                    logic signed [MAW+MCK:0] p;
                    c = (k < MNC - 1) ? signed'({1'b0, mb[l][(k * MCK) % SW +: MCK]})
                                      : (MCK + 1)'(mb[l] >>> ((MNC - 1) * MCK));
                    p = ma[l] * c;
                    pc[k] = (MAW + MCK + 2)'(p);
                    if (k > 0) pc[k] = pc[k] + (pc[(k + MNC - 1) % MNC] >>> MCK);
                end
                r = (SW + MAW)'(pc[MNC - 1]) << ((MNC - 1) * MCK);
                for (int k = 0; k < MNC - 1; k++) r[k * MCK +: MCK] = pc[k][MCK-1:0];
                mm[l] = signed'(r);
            end
        end
    end

`ifndef SYNTHESIS
    // (simulation: bank b's element of a GL-lane stream is its lane's, the lanes by the full
    // byte rotation lp * 2^esz)
    logic signed [15:0] f_xs [GL];
    always_ff @(posedge clk)
        for (int l = 0; l < GL; l++)
            f_xs[l] <= 16'(lane_elem(DG_AXI_DATA_BITS'({e_data, e_data} >> {e_rb, 3'b000}), l, e_esz, 1'b1));
    always_ff @(posedge clk)
        if (!rst && WROT && f_v && (f_kind == K_W1 || f_kind == K_W2 || f_kind == K_HW || f_kind == K_WS))
            for (int b = 0; b < GL; b++)
                if (f_bv2[b] && f_xw[b] != f_xs[f_bl2[b]])
                    $error("dg_gate: bank %0d's element of the GL-lane stream", b);
    // (simulation: the two uses of the shared multiplier never meet)
    always_ff @(posedge clk) begin
        if (!rst && q_v && f_v && (f_kind == K_W1 || f_kind == K_W2 || f_kind == K_HW
                                   || f_kind == K_O1))
            $error("dg_gate: the shared multiplier is wanted twice in one cycle");
        if (!rst && qt_v && h_v)
            $error("dg_gate: Pt and h written in one cycle");
    end
`endif
    // the channel decisions: logit = (the w2 row sum) + b2 >= 0, at CDW bits: |the row sum| <
    // MAXC * 2^15 * 2^15 and |b2| < 2^46 (checked: a larger b2 faults), so the sign of the
    // CDW-bit sum is the int64 one (issue 16: a narrow add, its bank select a variable apart)
    localparam int CDW = ((31 + $clog2(MAXC) > 47) ? 31 + $clog2(MAXC) : 47) + 2;
    logic signed [CDW-1:0] cd_lg [LN8], cd_sum [LN8];
    always_comb
        for (int l = 0; l < LN8; l++) begin
            cd_lg[l] = CDW'(lg_q[f_lne[l % GL]]);
            cd_sum[l] = cd_lg[l] + CDW'(f_x[l]);
        end
    wire [63:0] wb = a_work_base;
    always_ff @(posedge clk) begin
        done <= 1'b0;
        for (int l = 0; l < GL; l++) ws_we[l] <= 3'd0;
        p_we <= '0;
        rc_we <= '0;
        ci_we <= '0;
        ph_we <= '0;
        am_we <= '0;
        m1_we <= '0;
        lg_we <= '0;
        // ---- pool, stage Q: P = (S*R + 2^(RB-F-1)) >>> (RB-F) of the sums read the cycle before
        q_v <= 1'b0;
        qt_v <= q_v && q_tot;
        qt_lv <= q_lv;
        qt_on <= q_on;
        qt_bk <= q_bk;
        qt_c <= q_c;
        // (every cycle: the P banks take it only when p_we)
        for (int l = 0; l < GL; l++) p_wd[l] <= PVW'(pool_of(64'(mm[l])));
        if (qt_v) begin
            for (int l = 0; l < GL; l++) begin
                if (qt_lv[l]) begin
                    ph_we[l] <= 1'b1;
                    ph_wa[l] <= ph_AW'((qt_c + 32'(l)) >> GLL);
                    ph_wd[l] <= qt_on[l] ? p_wd[qt_bk[l]] : '0;
                end
            end
        end
        if (q_v) begin
            for (int l = 0; l < GL; l++) begin
                if (q_lv[l] && !q_tot) p_we[l] <= 1'b1;
            end
            p_wa <= cgrp(q_c);
        end
        // ---- gate-2 pool, stage A2: the step's sums (read the cycle before) into stage Q
        a2_v <= 1'b0;
        if (a2_v) begin
            q_v <= 1'b1;
            q_tot <= 1'b1;
            q_c <= a2_c;
            q_lv <= a2_lv;
            for (int l = 0; l < GL; l++) begin
                q_s[l] <= signed'(ac_q[l]);
                q_on[l] <= a2_on[l] && a2_any;
            end
            q_bk <= a2_bk;
        end
        // ---- stream pipeline (stage R is G_RDATA)
        // E: the beat's elements of this segment, sign-extended
        e_v <= 1'b0;
        f_v <= e_v;
        f_kind <= e_kind;
        f_n <= e_n;
        f_e <= e_e;
        f_row <= e_row;
        f_rend <= e_rend;
        f_c0 <= e_c == 32'd0;
        for (int b = 0; b < GL; b++) begin
            logic [31:0] l;
            l = (32'(b) - e_c) & 32'(GL - 1);      // the lane whose column falls into bank b
            f_rc[b] <= brow(e_c, b);
            f_bl[b] <= LBW'(l);
            f_bv[b] <= l < 32'(e_n) && l < LN4;
            f_bl2[b] <= TLW0'(l);
            f_bv2[b] <= l < 32'(e_n) && l < LN2;
            // (stage F writes row f_rc[b] of bank b now: ac_we / ac_wa; f_rc[b] is next brow)
            f_fw[b] <= f_v && f_kind == K_SUMS && f_bv[b] && ac_AW'(f_rc[b]) == ac_AW'(brow(e_c, b));
            f_lne[b] <= TLW0'(lane(e_e + 32'(b)));
        end
        for (int l = 0; l < AB; l++) f_lv[l] <= l < 32'(e_n);
        for (int b = 0; b < GL; b++)
            f_xw[b] <= (e_esz == 2'd0) ? 16'(signed'(e_wrot[8 * (b + (e_whi[b] ? GL : 0)) +: 8]))
                                       : e_wrot[(16 * b) % DG_AXI_DATA_BITS +: 16];
        f_ky <= 2'(e_row[3:0] / 4'd3);
        f_kx <= 2'(e_row[3:0] % 4'd3);
        f_kw12 <= e_v && (e_kind == K_W1 || e_kind == K_W2);
        f_ko1 <= e_v && e_kind == K_O1;
        // the head's W rows: bank l's channel sum (read in stage R) for stage F's products
        if (e_v && e_kind == K_HW) for (int l = 0; l < GL; l++) q_s[l] <= signed'(ac_q[l]);
        // gate-2 masks: the valid bits of word e (bits past N / in_c must be 0)
        // (the tile bitmap's words [0, g2_wt), then conv1's channel bitmap's: whole words
        // before the partial last one)
        for (int l = 0; l < LN4; l++) begin
            logic [15:0] e;
            e = 16'(e_e) + 16'(l);
            f_msp[l] <= e < 16'(g2_wt);                   // (K_MASK words: e < 2^16)
            f_mwi[l] <= (e < 16'(g2_wt)) ? e : e - 16'(g2_wt);
            if (e < 16'(g2_wt)) f_vm[l] <= (e < vm_thi) ? 32'hFFFF_FFFF : vm_tlo;
            else f_vm[l] <= (e < vm_chi) ? 32'hFFFF_FFFF : vm_clo;
        end
        // the bins stream (int8, 2*gh + 2*gw <= NBIN elements from 0): entry i <- lane i - e_e
        // (NBW-bit arithmetic per entry: an element index from 2^NBW > NBIN on writes none)
        for (int i = 0; i < NBIN; i++) begin
            logic [NBW-1:0] l;
            l = NBW'(i) - e_e[NBW-1:0];
            f_bwe[i] <= e_kind == K_BINS && e_e[31:NBW] == 0 && NBW'(i) >= e_e[NBW-1:0]
                        && 32'(l) < 32'(e_n) && 32'(l) < 32'(AB);
        end
        // (the bins and the gate-2 masks: e_wrot is the beat rotated by bn_lo for them; issue
        // 16: one rotator for f_brot and the GL-lane streams' f_xw, never in one stream)
        for (int j = 0; j < AB; j++) f_brot[j] <= e_wrot[j * 8 +: 8];
        // gate-2 masks: the tile bitmap's words of the segment (NTWB-bit arithmetic per word)
        for (int w = 0; w < NTW; w++) begin
            logic [NTWB-1:0] l;
            l = NTWB'(w) - e_e[NTWB-1:0];
            f_swe[w] <= e_kind == K_MASK && sw_tile[w] && e_e[31:NTWB] == 0 && NTWB'(w) >= e_e[NTWB-1:0]
                        && 32'(l) < 32'(e_n);
        end
        // (with WROT only the 4- and 8-byte elements are read from f_x: e_rot above)
        for (int l = 0; l < AB; l++)
            f_x[l] <= lane_elem(e_rot, l, WROT ? {1'b1, e_esz[0]} : e_esz,
                                e_kind != K_BINS && e_kind != K_RECIP && e_kind != K_MASK);
        // F: checks, memory writes, products
        g_v <= f_v;
        g_kind <= f_kind;
        g_n_el <= f_n;
        h_n <= g_n_el;
        g_e <= f_e;
        g_row <= f_row;
        g_rend <= f_rend;
        g_hb0 <= f_c0 && f_kind == K_HW;
        g_bias <= 64'(signed'(m1_q[lane(f_row)]));
        for (int l = 0; l < GL; l++) g_p[l] <= 64'sd0;
        cb_v <= f_v && f_kind == K_B2;
        cb_e0 <= f_e;
        cb_n <= f_n;
        for (int l = 0; l < LN4; l++) for (int q = 0; q < 4; q++) g_pc[l][q] <= 4'd0;
        g_mk_we <= '0;
        g_swe <= f_v ? f_swe : '0;
        for (int k = 0; k < AB / 4; k++) g_sd[k] <= {f_brot[4 * k + 3], f_brot[4 * k + 2], f_brot[4 * k + 1], f_brot[4 * k]};
        for (int l = 0; l < LN8; l++) g_o[l] <= 64'sd0;
        for (int l = 0; l < LN8; l++) g_phh[l] <= '0;
        g_flt <= '0;
        g_mbl <= '0;
        if (f_v) begin
            logic [LN4-1:0] flt;      // the lanes whose element fails its check
            flt = '0;
            for (int l = 0; l < AB; l++) begin
                if (f_lv[l]) begin
                    logic signed [63:0] x;
                    x = f_x[l];
                    case (f_kind)
                        K_BINS: ;                              // bins_m below
                        K_RECIP: if (l < LN4) begin
                            // (rc written per bank below)
                            flt[l] = x[31:0] == 0 || x[31:0] > 32'(DG_GATE_RECIP_MAX);
                        end
                        K_SUMS: ;                              // ac banks (always_comb above)
                        K_MASK: if (l < LN4) begin
                            // gate-2: word e of the gate record's masks (tile bitmap, then
                            // conv1's channel bitmap); bits past N / in_c must be 0
                            // (written in stage G: the word decode is off this stage's path)
                            g_mk_we[l] <= 1'b1;
                            g_mk_sp[l] <= f_msp[l];            // (e < g2_wt, decoded in stage E)
                            g_mk_wi[l] <= f_mwi[l];
                            g_mk_d[l] <= x[31:0];
                            g_mbl[l] <= (x[31:0] & ~f_vm[l]) != 0;
                            if (!f_msp[l])
                                for (int q = 0; q < 4; q++)
                                    g_pc[l][q] <= 4'($countones(x[q * 8 +: 8] & f_vm[l][q * 8 +: 8]));
                        end
                        K_WS: ;                                // ws banks below
                        K_BS: if (l < LN8) begin
                            bs_r <= LGW'(x);
                            flt[l] = big(x);
                        end
                        K_W1, K_W2, K_HW: ;                    // g_p below
                        K_M1: ;                                // m1 banks below
                        K_O1: if (l < LN8 && l < GL) begin
                            // (A*m1 = hi*m1 * 2^(MAW-1) + lo*m1 from the shared multiplier's
                            // lanes 2l, 2l + 1, the halves added in stage G; int64 wraps)
                            if (HID_MM) begin
                                g_p[l] <= 64'(mm[(2 * l) % GL]);
                                g_phh[l] <= PHW'(mm[(2 * l + 1) % GL]);
                            end else g_p[l] <= 64'(hid_prod(signed'(am_q[f_lne[l % GL]]), signed'(m1_q[f_lne[l % GL]])));
                            g_o[l] <= x + cg_rnd;              // (o1 + 2^(s-1): int64 wraps)
                            flt[l] = big(x);
                        end
                        K_B2: if (l < LN8) begin
                            cb_b[l] <= !cd_sum[l][CDW-1];
                            flt[l] = big(x);
                        end
                        default: ;                             // K_HB: lg banks below
                    endcase
                end
            end
            // the single-row 4-byte streams into lane banks (reciprocals, m1, the head's biases)
            // per bank: bank b takes the lane f_bl[b] whose element falls into it, at
            // row f_rc[b] (= the element's row: these streams are one row, so column = element;
            // issue 16: no scatter from the lanes into the banks)
            for (int b = 0; b < GL; b++) begin
                if (f_bv[b]) begin
                    case (f_kind)
                        K_RECIP: begin
                            rc_we[b] <= 1'b1;
                            rc_wa[b] <= rc_AW'(f_rc[b]);
                            rc_wd[b] <= f_xb[b];
                        end
                        K_M1, K_HB: begin
                            m1_we[b] <= 1'b1;
                            m1_wa[b] <= m1_AW'(f_rc[b]);
                            m1_wd[b] <= f_xb[b];
                        end
                        default: ;
                    endcase
                end
            end
            // the row products (w1, w2, head W) per bank: the shared multiplier
            if (f_kind == K_W1 || f_kind == K_W2 || f_kind == K_HW)
                for (int b = 0; b < GL; b++) g_p[b] <= f_bv2[b] ? 64'(mm[b]) : 64'sd0;
            // the spatial taps (tap row f_row = ky*3 + kx; channel c -> bank (kx, c mod GL)):
            // bank b takes its lane f_bl2[b] (a segment's <= GL consecutive channels fall into
            // different banks), at row ky * CGM + c div GL = f_rc[b]
            if (f_kind == K_WS) begin
                for (int b = 0; b < GL; b++) begin
                    if (f_bv2[b]) begin
                        ws_we[b][f_kx] <= 1'b1;
                        ws_wa[b] <= WSAW'(32'(f_ky) * CGM + 32'(CGL'(f_rc[b])));
                        ws_wd[b] <= WROT ? f_xw[b] : f_x[ABL'(f_bl2[b])][15:0];
                    end
                end
            end
            for (int i = 0; i < NBIN; i++) if (f_bwe[i]) bins_m[i] <= f_brot[i % AB];
            g_flt <= flt;
        end
        // gate-2: a mask word with a padding bit set, from stage G (issue 16: the OR over the
        // lanes off stage F's path; G_NEXT reads m_bad once the pipeline drained)
        if (g_mbl != '0) m_bad <= 1'b1;
        // the channels on so far, counted from stage G's decisions (issue 16: the count off
        // stage F's path, the decisions' add; G_NEXT reads it once the pipeline drained)
        if (cb_v) begin
            logic [15:0] c_cnt;
            c_cnt = cnt_c;
            for (int l = 0; l < LN8; l++) c_cnt = c_cnt + 16'(32'(l) < 32'(cb_n) && cb_b[l]);
            cnt_c <= c_cnt;
        end
        // G: the row sums (w1 -> A, w2 / head W -> logits), as a tree; hidden: A*m1 + o1 + round;
        // gate-2: conv1's active channels nc from its bitmap words
        t2_pv <= g_v && g_kind == K_MASK;
        if (t2_pv) t2_nc <= t2_nc + t2_ps[0] + t2_ps[1];
        if (g_v && g_kind == K_MASK) begin
            begin                     // (two balanced trees of the 4 * LN4 byte counts, 2 LN4 each)
                logic nz;
                nz = 1'b0;
                for (int h = 0; h < 2; h++) begin
                    logic [15:0] v [2 * LN4];
                    for (int i = 0; i < 2 * LN4; i++) begin
                        v[i] = 16'(g_pc[(2 * LN4 * h + i) / 4][(2 * LN4 * h + i) % 4]);
                        nz = nz || v[i] != 16'd0;
                    end
                    for (int w = 2 * LN4; w > 1; w = (w + 1) / 2) begin
                        for (int i = 0; i < w / 2; i++) v[i] = v[2 * i] + v[2 * i + 1];
                        if (w % 2 == 1) v[w / 2] = v[w - 1];
                    end
                    t2_ps[h] <= v[0];
                end
                if (nz) t2_nz <= 1'b1;
            end
            // (the tile bitmap's words: spat, g_swe below; conv1's channel words: ci banks)
            for (int l = 0; l < LN4; l++) begin
                if (g_mk_we[l]) begin
                    if (!g_mk_sp[l]) begin
                        ci_we[LN4B'(g_mk_wi[l]) & LN4B'(LN4 - 1)] <= 1'b1;
                        ci_wa[LN4B'(g_mk_wi[l]) & LN4B'(LN4 - 1)] <= CI_AW'(32'(g_mk_wi[l]) >> ((LN4 > 1) ? LN4B : 0));
                        ci_wd[LN4B'(g_mk_wi[l]) & LN4B'(LN4 - 1)] <= g_mk_d[l];
                    end
                end
            end
        end
        for (int w = 0; w < NTW; w++) if (g_swe[w]) spat[w * 32 +: 32] <= g_sd[w % (AB / 4)];
        // the stream's first failing element (stage F's per-lane checks; issue 16: the chain
        // over the lanes off stage F's paths). G_NEXT reads s_bad once the pipeline drained.
        if (g_v && !s_bad && g_flt != '0) begin
            logic [15:0] at;
            at = 16'(g_e);
            for (int l = LN4 - 1; l >= 0; l--) if (g_flt[l]) at = 16'(g_e) + 16'(l);
            s_bad <= 1'b1;
            s_bad_at <= at;
        end
        h_v <= g_v && g_kind == K_O1;
        h_e <= g_e;
        // (the shift in two parts: by whole bytes here, by the rest in stage H)
        for (int l = 0; l < LN8; l++) begin
            logic signed [63:0] v;
            v = signed'(h_v1[64 * l +: 64]) + 64'({g_phh[l], (MAW - 1)'(0)});
            h_t[l] <= HTW'(v >> {cg_sh[5:3], 3'b000});
            h_hi[l] <= (v & cg_hm) != 64'd0;
            h_neg[l] <= v[63];
        end
        if (g_v && (g_kind == K_W1 || g_kind == K_W2 || g_kind == K_HW)) begin
            logic signed [63:0] ssum, base;
            ssum = row_sum(g_p);
            base = rs_base;
            if (g_rend) begin
                racc <= 64'sd0;
                if (g_kind == K_W1) begin
                    am_we[lane(g_row)] <= 1'b1;
                    am_wa[lane(g_row)] <= am_AW'(g_row >> GLL);
                    am_wd[lane(g_row)] <= AW'(base + ssum);
                end else begin
                    lg_we[lane(g_row)] <= 1'b1;
                    lg_wa[lane(g_row)] <= lg_AW'(g_row >> GLL);
                    lg_wd[lane(g_row)] <= base + ssum;
                end
            end else racc <= base + ssum;
        end
        // H: hidden units clamp((A*m1 + o1 + 2^(s-1)) >>> s, 0, HMAX) (o1 lanes: one per element)
        if (h_v) begin
            for (int l = 0; l < LN8; l++) begin
                if (l < 32'(h_n)) begin
                    logic [HTW-1:0] u;
                    logic [15:0] t;
                    logic [31:0] e;
                    e = h_e + 32'(l);
                    // (v >>> s >= 0 iff v >= 0; v >>> s > HMAX iff it has a bit from HMB on)
                    u = h_t[l] >> cg_sh[2:0];
                    t = 16'(u[HMB-1:0]);
                    if (h_hi[l] || (u >> HMB) != 0) t = 16'(DG_GATE_HIDDEN_MAX);
                    if (h_neg[l]) t = 16'd0;
                    ph_we[lane(e)] <= 1'b1;
                    ph_wa[lane(e)] <= ph_AW'(32'(PH_D) + (e >> GLL));
                    ph_wd[lane(e)] <= PVW'(16'(t));
                end
            end
        end
        // spatial stage 5: the kernel row's three cells, logit += the tap's row sum (bs first);
        // decided on the cell's last contribution
        if (s4_v) begin
            logic [15:0] on;
            logic [2:0] dk, dv;       // per cell bank: decided now, its decision
            on = 16'd0;
            for (int kb = 0; kb < 3; kb++) begin
                dk[kb] = s4_kxv[kb] && s4_last[kb];
                dv[kb] = !lgs_v[kb][LGW-1];
                on = on + 16'(dk[kb] && dv[kb]);
            end
            // (cell i is s4_ctr - 1 + d for one d: one decode of s4_ctr, not one per bank; the
            // cell right of the bin, d = 2, is never decided here: its last contribution is
            // from a later bin, in raster order)
            for (int i = 0; i < NCELL; i++) begin
                if (i + 1 < NCELL && s5_hi[((i + 1) % NCELL) >> SLB]
                    && s5_lo0[((i + 1) % NCELL) & ((1 << SLB) - 1)])
                    spat[i] <= s5_val[0];
                if (s5_hi[i >> SLB] && s5_lo1[i & ((1 << SLB) - 1)]) spat[i] <= s5_val[1];
            end
`ifndef SYNTHESIS
            if (!rst && dk[s4_kbo[2]]) $error("dg_gate: the cell right of a bin decided at it");
`endif
            cnt_t <= cnt_t + on;
        end
        case (st)
            G_IDLE: if (start) begin ck <= 5'd0; st <= G_CHK; end
            G_CHK: if (ck != 5'(CK_LAT)) ck <= ck + 5'd1; else begin
                spat <= '0;
                cnt_t <= 16'd0;
                cnt_c <= 16'd0;
                ch_dense <= 1'b0;
                job <= 4'd0;
                b_gy <= 8'd0;
                b_gx <= 8'd0;
                b_gx3 <= 2'd0;
                s_bad <= 1'b0;
                if (chk_code != 8'd0) begin
                    e_code <= chk_code;
                    e_entry <= chk_entry;
                    st <= G_FAULT;
                end else if (is_head) begin
                    step <= S_HSUMS;
                    st <= G_NEXT;
                end else if (is_g2) begin
                    m_bad <= 1'b0;
                    t2_nc <= 16'd0;
                    t2_nz <= 1'b0;
                    step <= S2_RECIP;
                    st <= G_NEXT;
                end else begin
                    step <= S_BINS;
                    st <= G_NEXT;
                end
            end
            G_NEXT: if (!pipe_busy) begin
                // a finished stream step (its pipeline drained), or the start of one
                if (s_bad) begin
                    e_code <= DG_ERR_BAD_GATE;
                    e_entry <= s_bad_at;
                    st <= G_FAULT;
                end else if (is_g2 && m_bad && (step == S_DENSE || step == S_WRITE)) begin
                    // gate-2: the masks it read had a padding bit set (after the parameter checks)
                    e_code <= DG_ERR_BAD_GATE;
                    e_entry <= 16'(DG_GATE2_IN_MASK_OFFSET_WORD);
                    st <= G_FAULT;
                end else begin
                    case (step)
                        S_BINS: begin
                            stream(K_BINS, par_abs, 32'(po[DG_GATE_P_BINS]), 17'(2 * 32'(g_gh) + 2 * 32'(g_gw)), 17'd1, 2'd0, 32'hFFFF_FFFF);
                            step <= S_BCHK;
                        end
                        S_BCHK: begin lc <= 16'd0; st <= G_BCHK; end
                        S_RECIP: begin
                            stream(K_RECIP, par_abs, 32'(po[DG_GATE_P_RECIP]), 17'(32'(g_n) + 1), 17'd1, 2'd2, 32'hFFFF_FFFF);
                            step <= S_WS;
                            pool_tot <= 1'b0;
                            b_gy <= 8'd0;
                            b_gx <= 8'd0;
                            b_gx3 <= 2'd0;
                        end
                        S_BINSUM: begin
                            // one sum-tile row of bin (b_gy, b_gx) per stream, then its pool,
                            // then its spatial contributions (G_SPAT)
                            if (b_r < b_re) begin
                                acc_fresh <= b_r == b_rs;     // the bin's first sum-tile row
                                stream_at(K_SUMS, sums_abs, 32'd0, 16'(b_r), 16'(g_st_w), 16'(b_cs), g_in_c,
                                          17'(b_cw), 17'(g_in_c), 2'd2, 32'(g_in_c));
                                b_r <= b_r + 8'd1;
                            end else begin
                                lc_start(1'b0);
                                pool_tot <= 1'b0;
                                st <= G_POOL;
                            end
                        end
                        S_TOT: begin
                            acc_fresh <= 1'b1;
                            pool_tot <= 1'b1;         // the totals' reciprocal settles (rc_i)
                            stream(K_SUMS, sums_abs, 32'd0, 17'(q_gsthw), 17'(g_in_c), 2'd2, 32'(g_in_c));
                            step <= S_POOLT;
                        end
                        S_POOLT: begin lc_start(1'b0); pool_tot <= 1'b1; st <= G_POOL; end
                        S_WS: if (dense) step <= S_BS; else begin   // DENSE: only the checked sections
                            // the taps before the bins: each bin's spatial pass follows its pool
                            stream(K_WS, par_abs, 32'(po[DG_GATE_P_WS]), 17'd9, 17'(g_in_c), 2'd1, 32'(g_in_c));
                            step <= S_BS;
                        end
                        S_BS: begin
                            b_r <= b_rs;              // (bin 0's first row: b_gy = 0 since S_RECIP)
                            stream(K_BS, par_abs, 32'(po[DG_GATE_P_BS]), 17'd1, 17'd1, 2'd3, 32'hFFFF_FFFF);
                            step <= dense ? S_O1 : S_BINSUM;
                        end
                        S2_RECIP: begin
                            // gate-2: R(H*W) (checked) into rc entry 0, then the masks it reads
                            stream(K_RECIP, par_abs, 32'(po2[DG_GATE2_P_RECIP]), 17'd1, 17'd1, 2'd2, 32'hFFFF_FFFF);
                            step <= S2_MASK;
                        end
                        S2_MASK: begin
                            stream(K_MASK, wb, 32'(`DG_G2(IN_MASK_OFFSET)), 17'(g2_wt + 32'((32'(g2_in_c) + 31) >> 5)),
                                   17'd1, 2'd2, 32'hFFFF_FFFF);
                            t2_t <= 16'd0;
                            t2_t1 <= 16'd1;
                            t2_run <= 1'b0;
                            t2_any <= 1'b0;
                            step <= S2_SUMS;
                        end
                        S2_SUMS: begin
                            // conv1's compact sums, one stream per run of active tiles (G_TSCAN);
                            // DENSE or a faulty mask: only the checked sections follow
                            // (the scan window at tile 0 the first time: the masks are in spat)
                            if (!t2_any) sw_win <= spat[31:0];
                            if (dense || m_bad) step <= S_O1;
                            else if (!t2_nz || 64'(t2_t) >= g2_n) step <= S2_POOL;
                            else st <= G_TSCAN;
                        end
                        S2_POOL: begin
                            lc_start(1'b1);
                            t2_row <= 16'd0;
                            t2_row1 <= 16'd1;
                            t2_lo <= '0;
                            st <= G_POOL2;
                        end
                        S_W1: begin
                            stream(K_W1, par_abs, cg_w1_off, 17'(cg_hidden), 17'(cg_in_c), 2'd1, 32'(cg_in_c));
                            step <= S_M1;
                        end
                        S_M1: begin
                            stream(K_M1, par_abs, cg_m1_off, 17'(cg_hidden), 17'd1, 2'd2, 32'hFFFF_FFFF);
                            step <= S_O1;
                        end
                        S_O1: begin
                            stream(K_O1, par_abs, cg_o1_off, 17'(cg_hidden), 17'd1, 2'd3, 32'hFFFF_FFFF);
                            step <= S_W2;
                        end
                        S_W2: if (dense) step <= S_B2; else begin
                            stream(K_W2, par_abs, cg_w2_off, 17'(cg_out_c), 17'(cg_hidden), 2'd1, 32'(cg_hidden));
                            step <= S_B2;
                        end
                        S_B2: begin
                            stream(K_B2, par_abs, cg_b2_off, 17'(cg_out_c), 17'd1, 2'd3, 32'hFFFF_FFFF);
                            step <= dense ? S_DENSE : S_WRITE;
                        end
                        S_DENSE: begin
                            // RUN_FLAGS.DENSE: every tile and channel on (parameters checked, not evaluated)
                            // (spat is not written: the readers take every tile below N as
                            // on under ch_dense, as the channels below out_c; issue 16)
                            ch_dense <= 1'b1;
                            cnt_t <= 16'(g_n);
                            cnt_c <= cg_out_c;
                            step <= S_WRITE;
                        end
                        S_WRITE: begin
                            if (is_g2) begin
                                nc2 <= cnt_c;
                                job <= 4'd11;
                            end else begin
                                nt <= cnt_t;
                                nc <= cnt_c;
                                job <= 4'd0;
                            end
                            st <= G_WJOB;
                        end
                        S_HSUMS: begin
                            acc_fresh <= 1'b1;
                            stream(K_SUMS, sums_abs, 32'd0, 17'(q_hsthw), 17'(h_in_c), 2'd2, 32'(h_in_c));
                            step <= S_HB;
                        end
                        S_HB: begin
                            // the biases first (into the m1 banks): each row sum of W then
                            // starts from its class's bias (issue 16: no 64-bit adder per bank)
                            stream(K_HB, par_abs, h_bias_off, 17'(h_classes), 17'd1, 2'd2, 32'hFFFF_FFFF);
                            step <= S_HW;
                        end
                        S_HW: begin
                            stream(K_HW, par_abs, 32'd0, 17'(h_classes), 17'(h_in_c), 2'd0, 32'(h_in_c));
                            step <= S_HWRITE;
                        end
                        S_HWRITE: begin
                            job <= 4'd8;
                            st <= G_WJOB;
                        end
                        default: st <= G_FAULT;
                    endcase
                end
            end
            G_SP1: begin
                // (the stream pipeline is empty: G_NEXT waited for it)
                s_e <= 32'd0;
                s_rl <= s_rowlen;
                s_row <= 32'd0;
                s_col <= 32'd0;
                racc <= 64'sd0;
                rowlen_s <= sat(s_rowlen);
                rl_s <= sat(s_rowlen);
                sp_t1 <= 17'(32'(sp_mx) * 32'(sp_my) + 32'(sp_mz));
                s_n <= sp_prod;
                sp_a <= sp_base + 64'(sp_off);
                st <= G_SP2;
            end
            G_SP2: begin
                sp_t2 <= sp_prod;
                s_nl <= s_n;
                st <= G_SP3;
            end
            G_SP3: begin
                logic [ABL-1:0] lo;                  // the address's offset in its beat
                lo = sp_a[ABL-1:0] + ABL'({sp_t2, 2'b00});
                s_addr <= sp_a + 64'({sp_t2, 2'b00});
                s_lp <= 16'(lo >> s_esz);
                bn_lo <= ABW'(lo);
                nl_s <= sat(s_nl);
                s_bpb <= (SEGW + 1)'(32'(AB) >> s_esz);
                s_bl <= (SEGW + 1)'((32'(AB) >> s_esz) - (32'(lo) >> s_esz));
                s_cap <= (s_kind == K_BINS) ? (SEGW + 1)'(AB) : (SEGW + 1)'(GL);
                s_beats <= 24'((64'(lo) + (64'(s_n) << s_esz) + 64'(AB - 1)) >> ABL);
                st <= (s_n == 0) ? G_NEXT : G_RCMD;
            end
            G_RCMD: if (rcmd_ready) st <= G_RDATA;
            G_RDATA: if (rd_valid) begin
                // stage R: the segment of this beat goes down the stream pipeline
                e_v <= 1'b1;
                e_kind <= s_kind;
                e_data <= rd_data;
                e_rb <= ABW'(32'(s_lp) << s_esz);
                // (the bins and the gate-2 masks: rotated by bn_lo, into f_brot)
                e_rw <= (s_kind == K_BINS || s_kind == K_MASK) ? bn_lo
                                                                : ABW'((32'(s_lp) - lane(s_col)) << s_esz);
                for (int b = 0; b < GL; b++) e_whi[b] <= 32'(b) < lane(s_col);
                e_esz <= s_esz;
                e_n <= SEGW'(seg_n);
                e_e <= s_e;
                e_c <= s_col;
                e_row <= s_row;
                e_rend <= seg_row_end;
                if (seg_row_end) begin
                    s_row <= s_row + 32'd1;
                    s_col <= 32'd0;
                end else s_col <= s_col + seg_n;
                s_rl <= s_rl_next;            // (s_rowlen at a row end)
                s_e <= s_e + seg_n;
                s_nl <= s_nl_next;
                rl_s <= rl_s_next;
                nl_s <= nl_s_next;
                s_lp <= s_lp_next;
                s_bl <= s_bl_next;
                if (seg_last) st <= G_NEXT;
            end
            G_BCHK: begin
                // bin table: 0 <= start < end <= st_h (rows), st_w (cols); one pair per cycle
                // (pair lc and its limit read into bk_* the cycle before)
                if (bk_s >= bk_lim) begin
                    e_code <= DG_ERR_BAD_GATE;
                    e_entry <= 16'(2 * 32'(lc));
                    st <= G_FAULT;
                end else if (!(bk_s < bk_e && bk_e <= bk_lim)) begin
                    e_code <= DG_ERR_BAD_GATE;
                    e_entry <= 16'(2 * 32'(lc) + 1);
                    st <= G_FAULT;
                end else if (bk_last) begin
                    step <= S_RECIP;
                    st <= G_NEXT;
                end
                lc <= lc + 16'd1;
            end
            G_POOL: begin
                // GL channels per cycle: P (bin) or Pt (totals); the accumulators restart at 0
                q_v <= 1'b1;
                q_tot <= pool_tot;
                q_c <= 32'(lc);
                for (int l = 0; l < GL; l++) begin
                    q_lv[l] <= lc_lv[l];
                    q_s[l] <= signed'(ac_q[l]);
                    q_on[l] <= 1'b1;
                    q_bk[l] <= TLW0'(l);
                end
                lc_step();
                if (lc_last) begin
                    if (pool_tot) begin
                        st <= G_NEXT;
                        step <= S_W1;
                    end else begin
                        // the bin's spatial pass: it starts once stage Q has drained (its last
                        // P is written in the cycle of the first read: P's read port is
                        // write-first)
                        lc_start(1'b0);
                        sp_ky <= 2'd0;
                        sp_init <= 1'b1;
                        st <= G_SPAT;
                    end
                end
            end
            G_SPAT: if (sp_init) begin
                // first cycle (stage Q of the pool still writes): the pass runs on a copy of the
                // bin; the bin counters move on now, so the bin-derived registers (b_re, b_cs,
                // b_cw) have settled when the next bin's sums start right after the pass
                sp_init <= 1'b0;
                sp_by <= b_gy;
                sp_bx <= b_gx;
                sp_c3 <= (b_gx3 == 2'd2) ? 2'd0 : b_gx3 + 2'd1;
                sp_rin0 <= b_gy + 8'd1 < g_gh;
                sp_rin2 <= b_gy != 8'd0;
                sp_cin0 <= b_gx + 8'd1 < g_gw;
                sp_cin2 <= b_gx != 8'd0;
                sp_last <= 1'b0;
                if (b_gx + 8'd1 < g_gw) begin
                    b_gx <= b_gx + 8'd1;
                    b_gx3 <= (b_gx3 == 2'd2) ? 2'd0 : b_gx3 + 2'd1;
                end else if (b_gy + 8'd1 < g_gh) begin
                    b_gx <= 8'd0;
                    b_gx3 <= 2'd0;
                    b_gy <= b_gy + 8'd1;
                end else sp_last <= 1'b1;
            end else begin
                // the loop of stage 0 (bin (sp_by, sp_bx), kernel row sp_ky: three taps x GL
                // channels per cycle; a kernel row whose cells are outside the grid takes one
                // cycle); the products and the cells' logits follow in the spatial pipeline
                logic row_end;
                // the next bin's first sum-tile row: its b_rs has settled from the second cycle
                // after sp_init (the pass has >= 3 cycles, one per kernel row at least)
                b_r <= b_rs;
                row_end = !s0_row_in || lc_last;
                if (row_end) lc_start(1'b0);
                else lc_step();
                if (row_end && sp_ky == 2'd2) begin
                    sp_ky <= 2'd0;
                    // the next bin's sums (the spatial pipeline runs on), or after the last bin
                    // its cells decided, then the totals
                    st <= sp_last ? G_SDRAIN : G_NEXT;
                end else if (row_end) sp_ky <= sp_ky + 2'd1;
            end
            G_TSCAN: begin
                // gate-2: one tile per cycle; a run of consecutive active tiles [t2_t0, t2_t) is
                // one contiguous stretch of conv1's compact sums ([tile][nc] int32): one stream,
                // one row per tile, accumulated per compact channel (the first row starts it)
                logic on, past;
                past = ts_past;
                on = sw_win[0] && !past;          // (tile t2_t's bit: the scan window's bit 0)
                if (on) begin
                    if (!t2_run) t2_t0 <= t2_t;
                    t2_run <= 1'b1;
                    t2_t <= t2_t1;
                    t2_t1 <= t2_t1 + 16'd1;
                    sw_win <= (t2_t[4:0] == 5'd31) ? sw_nxt : sw_win >> 1;
                end else if (t2_run) begin
                    acc_fresh <= !t2_any;
                    t2_any <= 1'b1;
                    t2_run <= 1'b0;
                    stream_at(K_SUMS, sums_abs, 32'd0, t2_t0, 16'd1, 16'd0, t2_nc,
                              17'(t2_t - t2_t0), 17'(t2_nc), 2'd2, 32'(t2_nc));
                    step <= S2_SUMS;
                end else if (past) begin
                    step <= S2_POOL;
                    st <= G_NEXT;
                end else begin
                    t2_t <= t2_t1;
                    t2_t1 <= t2_t1 + 16'd1;
                    sw_win <= (t2_t[4:0] == 5'd31) ? sw_nxt : sw_win >> 1;
                end
            end
            G_POOL2: begin
                // gate-2: Pt in channel order, GL channels per cycle (the shared pool lanes)
                logic [31:0] lo;
                a2_v <= 1'b1;
                a2_any <= t2_any;
                a2_on <= pl_on;
                a2_bk <= pl_bk;
                a2_c <= 32'(lc);
                a2_lv <= lc_lv;
                lo = 32'(t2_lo) + pl_k;               // j += the channels kept (<= GL)
                if (lo >= GL) begin
                    t2_row <= t2_row + 16'd1;
                    t2_row1 <= t2_row1 + 16'd1;
                    lo = lo - GL;
                end
                t2_lo <= TLW'(lo);
                lc_step();
                if (lc_last) begin
                    step <= S_W1;
                    st <= G_NEXT;
                end
            end
            G_SDRAIN: if (!s_pipe_busy) begin
                step <= S_TOT;
                st <= G_NEXT;
            end
            G_WJOB: begin
                // the next write: gate jobs 0..6, head jobs 8..9, gate-2 jobs 11..13 (jb_*)
                job <= job + 4'd1;
                if (job == 4'd9) head_log <= rec_cycles;
                if (jb_on) wjob(wb + 64'(jb_off), jb_nbytes, jq_empty[job], jb_kind, jb_sel, jb_limit, jb_total, jq_lnz[job]);
                else begin
                    e_code <= 8'd0;
                    e_entry <= 16'd0;
                    st <= G_DONE;
                end
            end
            G_WCMD: if (wcmd_ready) begin
                st <= G_WDATA;
                wq_data <= wn_data;
                wq_strb <= wn_strb;
                w_nx <= w_nx1;
                w_nx1 <= w_nx1 + 24'd1;
                ch_r0 <= ch_r1;
                for (int k = 0; k < WPB; k++) ch_r1[k] <= ch_r1[k] + CH_AW'(1);
                lg_r0 <= lg_r1;
                for (int b = 0; b < GL; b++) lg_r1[b] <= lg_AW'(brow((32'(w_nx1) + 32'd1) * 32'(AB / 8), b));
                w_rem <= w_rem - 33'(AB);
            end
            G_WDATA: begin
                if (w_kind != 2'd1) begin
                    if (wd_ready) begin
                        w_beat <= w_beat + 24'd1;
                        wq_data <= wn_data;
                        wq_strb <= wn_strb;
                        w_nx <= w_nx1;
                        w_nx1 <= w_nx1 + 24'd1;
                        ch_r0 <= ch_r1;
                        for (int k = 0; k < WPB; k++) ch_r1[k] <= ch_r1[k] + CH_AW'(1);
                        lg_r0 <= lg_r1;
                        for (int b = 0; b < GL; b++) lg_r1[b] <= lg_AW'(brow((32'(w_nx1) + 32'd1) * 32'(AB / 8), b));
                        w_rem <= w_rem - 33'(AB);
                        if (w_beat == w_bm1) st <= G_WJOB;
                    end
                end else if (lb_pend) begin
                    if (wd_ready) begin
                        lb_pend <= 1'b0;
                        lb_cnt <= 16'd0;
                        if (w_emitted == w_total) st <= G_WJOB;
                    end
                end else if (w_more) begin
                    // one candidate index per cycle, ascending
                    logic sel;
                    case (w_sel)
                        // (spat[w_scan]: the scan window's bit 0; DENSE: every tile below N,
                        // the list's limit, is on)
                        2'd0: sel = sw_win[0] || ch_dense;
                        2'd1: sel = !(sw_win[0] || ch_dense);
                        default: sel = ch_bit;
                    endcase
                    if (sel) begin
                        lb_data[32'(lb_cnt) * 16 +: 16] <= w_scan;
                        lb_cnt <= lb_cnt + 16'd1;
                        w_emitted <= w_emitted + 16'd1;
                        if (32'(lb_cnt) == EPB - 1 || w_emitted == w_tm1) lb_pend <= 1'b1;
                    end
                    w_scan <= w_scan1;
                    w_scan1 <= w_scan1 + 16'd1;
                    ch_p0 <= ch_p1;
                    ch_p1 <= ch_p1 + 16'(w_scan1[4:0] == 5'd31);
                    sw_win <= (w_scan[4:0] == 5'd31) ? sw_nxt : sw_win >> 1;
                    w_more <= w_scan1 < w_limit;
                end
            end
            G_FAULT: begin
                err_code <= e_code;
                err_entry <= e_entry;
                done <= 1'b1;
                st <= G_IDLE;
            end
            G_DONE: begin
                err_code <= 8'd0;
                err_entry <= 16'd0;
                done <= 1'b1;
                st <= G_IDLE;
            end
            default: st <= G_IDLE;
        endcase
        if (rst) begin
            st <= G_IDLE;
            done <= 1'b0;
            e_v <= 1'b0;              // the stream and pool pipelines start empty
            f_v <= 1'b0;
            g_v <= 1'b0;
            h_v <= 1'b0;
            q_v <= 1'b0;
            qt_v <= 1'b0;
            a2_v <= 1'b0;
            t2_pv <= 1'b0;
        end
    end
`undef DG_G
`undef DG_H
`undef DG_G2
    wire unused_ok = &{1'b0, po[DG_GATE_P_BINS]};
endmodule
`default_nettype wire
