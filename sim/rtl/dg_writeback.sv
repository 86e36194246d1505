`default_nettype none
// dg_writeback: the engine's write-back (one job: turn MAC results into bytes in memory).
//
// Per output pixel of a tile (MAC results in sequence order, through a queue): add the
// bias, requantize with the per-channel multiplier (+ residual x res_mult), shift, clamp
// (the u8 clamp is the ReLU); optionally the fused 3x3/s2 max-pool over the tile's conv
// patch; per-tile int32 channel sums; strobed AXI writes of the output pixels and the sums
// (a packetizer turns {address, bytes} packets into write-master commands and beats).
// It owns the tile-record queue (pushed by the compute when a tile starts) and counts
// the groups written back (`wb_gdone`), which frees their weight bank for the loader.
// The max-pool buffer is double-buffered: the MAC results of one tile go into one half
// while the previous tile is pooled from the other (`wb_busy`: two tiles started and not
// yet pooled, the compute waits), so pooling hides behind the next tile's MACs.
// With `pixel_sums` (formats: one sum tile per output pixel) every output pixel also goes
// out as a sums packet: its Tm values as int32 at sums_abs + 4 * (pixel * C_stored + m0),
// i.e. 4x the pixel's own byte offset in the output map, instead of the per-tile sums.
// A depthwise layer's m-groups run per tile (one tile record and tag `sg` per pass): the
// params come from the loader's per-m-group banks (dw_bias/dw_mult[sg]), the pass writes
// channels sg*Tm .. of the pixel (m0 = sg*Tm, m_g = min(Tm, n_out - m0)).
//
// Timing structure (issue 16; every register-to-register path a few LUT levels):
// - No address product per pixel. A tile's addresses are products of its record
//   (o0y * out_w, ..., * cout_st): a 4-stage pipeline computes them once per tile record,
//   when the compute pushes it, into a 4-slot table that mirrors the tile-record queue
//   (`ts_*`: pixel base address, sums address, lanes, the pool window's start). The MAC
//   results of a tile arrive in raster order (py, px), so a pixel's address is the base, or
//   the previous pixel's + cout_st, or the row start's + out_w * cout_st (counters).
// - The max-pool buffer is one RAM per output lane (both halves, {half, y * CT_MAX + x}),
//   one write port (the requantizer's result) and a registered read port (block RAM or
//   LUTRAM of its real size); its window reads walk counters, not y * CT_MAX + x products.
// - Two register stages in front of the requantizer (queue output; bias add and the
//   parameter selects), so the requantizer's multipliers start from registers.
// - Write packets are queued as formed ({address, bytes}; pixel packets Tm bytes wide, sums
//   4*Tm); the packetizer aligns each beat as it sends it: a rotator over two packet beats
//   in steps of 4 bytes (AB / 4 positions; a pixel packet's data is shifted by its address
//   mod 4 as it is taken, sums packets are 4-byte aligned) and per-byte strobe compares,
//   not a shifter of the whole packet in front of each queue.
// - The requantizer (dg_requant) takes its phases' lanes from a shift register (no run-time
//   lane index) and clamps in a stage of its own.
module dg_writeback
    import dg_pkg::*;
(
    input  wire                         clk,
    input  wire                         rst,
    input  dg_layer_t                   L,
    input  wire                         run_init,
    // from the compute
    input  wire                         mac_v,
    input  wire [DG_TM*32-1:0]          mac_acc,
    input  wire [MTAG_W-1:0]            mac_tag,
    output wire [$clog2(WBQ_DEPTH):0]   wbq_count,
    input  wire                         tr_push,
    input  wire [TR_W-1:0]              tr_in,
    output wire                         tr_in_ready,
    input  wire                         start_fire,
    output logic                        wb_busy,       // max-pool: two tiles outstanding (both pool halves)
    // group params (loader banks)
    input  wire [15:0]                  bk_m0 [2],
    input  wire [7:0]                   bk_mg [2],
    input  wire [31:0]                  bk_bias [2][DG_TM],
    input  wire [31:0]                  bk_mult [2][DG_TM],
    output wire                         dw_re,         // depthwise params (loader): read
    output wire [I_SG-1:0]              dw_ra,         //   the m-group s1 takes next
    input  wire [31:0]                  dw_bias_q [DG_TM],   // its row, one cycle later
    input  wire [31:0]                  dw_mult_q [DG_TM],
    output logic [15:0]                 wb_gdone,      // groups completely written back
    output wire                         wb_idle,
    // write master
    output logic                        wcmd_valid,
    output logic [63:0]                 wcmd_addr,
    output logic [23:0]                 wcmd_beats,
    input  wire                         wcmd_ready,
    output logic [DG_AXI_DATA_BITS-1:0] wd_data,
    output logic [AB-1:0]               wd_strb,
    output logic                        wd_valid,
    input  wire                         wd_ready
);
    localparam int PKQ_DEPTH = 16;
    localparam int SKQ_DEPTH = 8;
    localparam int WIN_BEATS = (PK_BYTES + AB - 1) / AB + 1;   // beats of a packet (any alignment)
    localparam int PX_BYTES = DG_TM;                     // largest pixel packet
    localparam int WBL = $clog2(WIN_BEATS + 1);          // beat counter width
    localparam int PAW = $clog2(PPIX);                   // pool RAM: pixel address bits
    localparam int GW = 18;                              // signed conv-map coordinate bits
    // tile records for the write-back: {gb, glast, idx, o0y, o0x, cy0, cx0, oh, ow, chy, chw}
    wire tr_valid;
    wire [TR_W-1:0] tr_out;
    wire tr_pop;
    logic tr_pop_pl;
    wire [2:0] tr_count;
    dg_fifo #(.WIDTH(TR_W), .DEPTH(4)) tile_rec_fifo (
        .clk(clk), .rst(rst), .in_data(tr_in), .in_valid(tr_push), .in_ready(tr_in_ready),
        .out_data(tr_out), .out_valid(tr_valid), .out_ready(tr_pop), .count(tr_count));

    localparam int WBQ_W = DG_TM * 32 + MTAG_W;
    wire wbq_in_ready, wbq_valid;
    wire [WBQ_W-1:0] wbq_out;
    logic wbq_pop;
    dg_fifo #(.WIDTH(WBQ_W), .DEPTH(WBQ_DEPTH)) wb_fifo (
        .clk(clk), .rst(rst), .in_data({mac_tag, mac_acc}), .in_valid(mac_v), .in_ready(wbq_in_ready),
        .out_data(wbq_out), .out_valid(wbq_valid), .out_ready(wbq_pop), .count(wbq_count));

    // ------------------------------------------------------------------ requantizer front
    // s1: the popped queue entry; s2: acc + bias, the multiplier, the residual (registers
    // into the requantizer); the requantizer's tag carries the pool RAM address too
    localparam int RTAG_W = 21 + PAW;        // {first, row start, gb, res_only, tile_last, py, px, pool address}
    // the layer is depthwise (the constant gates it: no depthwise logic without the hardware)
    wire l_dw = DG_DEPTHWISE && L.dw;
    logic s1_v, s2_v;
    logic [DG_TM*32-1:0] s1_acc;
    logic [MTAG_W-1:0] s1_tag;
    logic [DG_TM*33-1:0] rq_acc;
    logic [DG_TM*32-1:0] rq_mult;
    logic [DG_TM*9-1:0] rq_res;
    logic [RTAG_W-1:0] s2_tag;
    wire rq_v;
    wire [DG_TM*8-1:0] rq_y;
    wire [RTAG_W-1:0] rq_tag;
    logic [3:0] rq_inflight;                 // popped from the queue, not yet out of the requantizer
    wire rq_in_ready;
    wire s2_adv = !s2_v || rq_in_ready;      // s2 takes a new entry this cycle
    wire s1_adv = !s1_v || s2_adv;
    // RQ_SHARE cycles per pixel (dg_pkg): DG_TM / RQ_SHARE lanes of multipliers
    dg_requant #(.LANES(DG_TM), .SHARE(RQ_SHARE), .TAG_W(RTAG_W)) rq (
        .clk(clk), .rst(rst), .in_valid(s2_v), .in_ready(rq_in_ready), .in_acc(rq_acc), .in_mult(rq_mult), .in_res(rq_res),
        .res_mult(L.res_mult), .shift(L.shift), .out_signed(L.out_signed), .in_tag(s2_tag),
        .out_valid(rq_v), .out_y(rq_y), .out_tag(rq_tag));
    wire s1_res_only = s1_tag[MTAG_W-2];
    wire s1_gb = s1_tag[MTAG_W-1];
    wire [15:0] s1_sg = s1_tag[DG_TM * 8 +: 16];
    // the loader's depthwise parameter row of the m-group s1 loads (read with s1, so its
    // registered output holds s1's row when s2 takes it)
    // (none without the depthwise hardware: DG_DEPTHWISE = 0 leaves no depthwise logic here)
    assign dw_re = DG_DEPTHWISE && s1_adv;
    assign dw_ra = DG_DEPTHWISE ? I_SG'(wbq_out[DG_TM * 32 + DG_TM * 8 +: 16]) : '0;
    wire [7:0] s1_py = s1_tag[DG_TM * 8 + 24 +: 8];
    wire [7:0] s1_px = s1_tag[DG_TM * 8 + 16 +: 8];

    // write packets: pixels (pkq, up to PX_BYTES) and sums (skq, up to PK_BYTES), queued as
    // formed: {addr, nbytes, data}; the packetizer aligns them to the AXI beat as it sends
    // them (a byte rotator of one beat, not a shifter of the whole packet per queue)
    localparam int PKT_W = 64 + 8 + PK_BYTES * 8;
    localparam int PXT_W = 64 + 8 + PX_BYTES * 8;
    logic [PXT_W-1:0] pkq_in;
    logic [PKT_W-1:0] skq_in;
    logic pkq_push, skq_push;
    wire pkq_in_ready, pkq_valid, skq_in_ready, skq_valid;
    wire [PXT_W-1:0] pkq_out;
    wire [PKT_W-1:0] skq_out;
    logic pkq_pop, skq_pop;
    wire [$clog2(PKQ_DEPTH):0] pkq_count;
    wire [$clog2(SKQ_DEPTH):0] skq_count;
    dg_fifo #(.WIDTH(PXT_W), .DEPTH(PKQ_DEPTH)) pk_fifo (
        .clk(clk), .rst(rst), .in_data(pkq_in), .in_valid(pkq_push), .in_ready(pkq_in_ready),
        .out_data(pkq_out), .out_valid(pkq_valid), .out_ready(pkq_pop), .count(pkq_count));
    dg_fifo #(.WIDTH(PKT_W), .DEPTH(SKQ_DEPTH)) sk_fifo (
        .clk(clk), .rst(rst), .in_data(skq_in), .in_valid(skq_push), .in_ready(skq_in_ready),
        .out_data(skq_out), .out_valid(skq_valid), .out_ready(skq_pop), .count(skq_count));
    logic signed [31:0] sums [DG_TM];

    // ================================================================== tile record fields
    wire        tr_glast = tr_out[TR_W-2];
    wire [15:0] tr_o0y = tr_out[TR_W-19 -: 16];
    wire [15:0] tr_o0x = tr_out[TR_W-35 -: 16];
    wire [7:0]  tr_oh = tr_out[47:40];
    wire [7:0]  tr_ow = tr_out[39:32];

    // ================================================================== per-tile addresses
    // pipeline P1..P4 from the pushed record into its slot ts_*[slot] (slot = the record's
    // place in the tile-record queue: ts_wp counts pushes, ts_rp pops)
    wire        ti_gb = tr_in[TR_W-1];
    wire [15:0] ti_idx = tr_in[TR_W-3 -: 16];
    wire [15:0] ti_o0y = tr_in[TR_W-19 -: 16];
    wire [15:0] ti_o0x = tr_in[TR_W-35 -: 16];
    wire [15:0] ti_cy0 = tr_in[TR_W-51 -: 16];
    wire [15:0] ti_cx0 = tr_in[TR_W-67 -: 16];
    wire [15:0] ti_sg = tr_in[15:0];
    wire ti_fire = tr_push && tr_in_ready;
    logic [1:0] ts_wp, ts_rp;
    logic [2:0] tp_v;
    logic [1:0] tp_slot [4];
    logic [31:0] p1_m1, p1_q;
    logic [15:0] p1_o0x, tp_m0 [4];
    logic [7:0]  tp_mg [4];
    logic signed [GW-1:0] p1_ry, p1_rx, tp_gy0 [4], tp_gx0 [4];
    logic [31:0] p2_pix;
    logic [63:0] p2_sums, p3_sums;
    logic [PAW-1:0] p2_ra0, p3_ra0;
    logic [47:0] p3_m3;
    // the slots
    logic [63:0] ts_base [4];     // out_abs + ((o0y * out_w + o0x) * cout_st + m0: pixel (0, 0)
    logic [63:0] ts_sums [4];     // the tile's sums packet address
    logic [7:0]  ts_mg [4];       // lanes written (grp_mg)
    logic [PAW-1:0] ts_ra0 [4];   // max-pool: the first window's first conv pixel in the tile's patch
    logic signed [GW-1:0] ts_gy0 [4], ts_gx0 [4];   // ... and its conv-map position
    logic [3:0] ts_ok;            // slot written (checked when read)
    // per layer: a row of output pixels and the sums address offset
    logic [63:0] row_step, sums_delta;
    always_ff @(posedge clk) begin
        row_step <= 64'(32'(L.out_w) * 32'(L.cout_st));
        sums_delta <= L.sums_abs - (L.out_abs << 2);
        // P1: the record's products and the group's first channel and lanes
        p1_m1 <= 32'(ti_o0y) * 32'(L.out_w);
        p1_q <= 32'(ti_idx) * 32'(L.cout_st);
        p1_o0x <= ti_o0x;
        tp_m0[0] <= l_dw ? 16'(32'(ti_sg) * DG_TM) : bk_m0[ti_gb];
        tp_mg[0] <= l_dw ? ((32'(L.n_out) - 32'(ti_sg) * DG_TM > DG_TM) ? 8'(DG_TM) : 8'(32'(L.n_out) - 32'(ti_sg) * DG_TM))
                         : bk_mg[ti_gb];
        p1_ry <= GW'(2 * 32'(ti_o0y)) - GW'(1) - GW'(ti_cy0);
        p1_rx <= GW'(2 * 32'(ti_o0x)) - GW'(1) - GW'(ti_cx0);
        tp_gy0[0] <= GW'(2 * 32'(ti_o0y)) - GW'(1);
        tp_gx0[0] <= GW'(2 * 32'(ti_o0x)) - GW'(1);
        tp_slot[0] <= ts_wp;
        // P2
        p2_pix <= p1_m1 + 32'(p1_o0x);
        p2_sums <= L.sums_abs + ((64'(p1_q) + 64'(tp_m0[0])) << 2);
        p2_ra0 <= PAW'(p1_ry * GW'(CT_MAX) + p1_rx);      // modulo 2^PAW: exact where it is read
        // P3
        p3_m3 <= 48'(p2_pix) * 48'(L.cout_st);
        p3_sums <= p2_sums;
        p3_ra0 <= p2_ra0;
        for (int i = 1; i < 4; i++) begin
            tp_m0[i] <= tp_m0[i-1];
            tp_mg[i] <= tp_mg[i-1];
            tp_gy0[i] <= tp_gy0[i-1];
            tp_gx0[i] <= tp_gx0[i-1];
            tp_slot[i] <= tp_slot[i-1];
        end
        // P4: into the slot
        if (tp_v[2]) begin
            ts_base[tp_slot[2]] <= L.out_abs + 64'(p3_m3) + 64'(tp_m0[2]);
            ts_sums[tp_slot[2]] <= p3_sums;
            ts_mg[tp_slot[2]] <= tp_mg[2];
            ts_ra0[tp_slot[2]] <= p3_ra0;
            ts_gy0[tp_slot[2]] <= tp_gy0[2];
            ts_gx0[tp_slot[2]] <= tp_gx0[2];
        end
        if (rst || run_init) begin
            tp_v <= '0;
            ts_wp <= '0;
            ts_rp <= '0;
            ts_ok <= '0;
        end else begin
            tp_v <= {tp_v[1:0], ti_fire};
            if (ti_fire) ts_wp <= ts_wp + 2'd1;
            if (tr_pop && tr_valid) ts_rp <= ts_rp + 2'd1;
            for (int s = 0; s < 4; s++)
                if ((tp_v[2] && tp_slot[2] == 2'(s)) || (tr_pop && tr_valid && ts_rp == 2'(s)))
                    ts_ok[s] <= tp_v[2] && tp_slot[2] == 2'(s);
        end
    end
    // the head record's slot (the tile being written back or pooled)
    wire [63:0] h_base = ts_base[ts_rp];
    wire [63:0] h_sums = ts_sums[ts_rp];
    wire [7:0]  h_mg = ts_mg[ts_rp];
    wire [7:0]  h_mg4 = 8'(32'(h_mg) * 4);

    // ================================================================== max-pool
    typedef enum logic [1:0] {PL_IDLE, PL_RUN, PL_EMIT, PL_SUMS} pl_state_t;
    pl_state_t pl_state;
    logic pl_wsel;                  // half the MAC results of the current tile go to
    logic pl_rsel;                  // half being pooled
    logic pl_pend;                  // the other half holds a complete tile, waiting to be pooled
    logic [1:0] pl_out;             // tiles started and not yet pooled
    assign wb_busy = pl_out >= 2'd2;
    logic [7:0] pl_oy, pl_ox;
    logic [3:0] pl_w;               // window position 0..8 being read
    logic [1:0] pl_wx;              // its column in the window
    logic pl_first;                 // first cycle of a tile: counters from the head slot
    logic pl_row_end, pl_last_px;   // the output pixel being pooled ends its row / the tile
    // room for an emitted pixel (and its sums packet) in the write queues, from last cycle's
    // counts (a queue gains at most one packet per cycle: one more than the room needed now)
    logic pl_emit_room;
    logic pl_rv, pl_rvalid;         // read issued last cycle / its position is inside the map
    logic [7:0] pl_q [DG_TM];
    logic [7:0] pl_max [DG_TM];
    logic pl_any;
    logic [DG_TM*8-1:0] pl_max_packed;
    always_comb for (int l = 0; l < DG_TM; l++) pl_max_packed[l*8 +: 8] = pl_max[l];
    // window read counters: this position (pl_*), the output pixel's first position (pb_*),
    // the first position of the next row of output pixels (pr_*)
    logic [PAW-1:0] pl_ra, pb_ra, pr_ra;
    logic signed [GW-1:0] pl_gy, pl_gx, pb_gy, pb_gx, pr_gx;
    // emit address counters: this output pixel, the next row's first
    logic [63:0] pe_a, pe_rn;
    wire [PAW-1:0] e_ra = pl_first ? ts_ra0[ts_rp] : pl_ra;
    wire signed [GW-1:0] e_gy = pl_first ? ts_gy0[ts_rp] : pl_gy;
    wire signed [GW-1:0] e_gx = pl_first ? ts_gx0[ts_rp] : pl_gx;
    // the pool RAMs: one per lane, {half, conv pixel y * CT_MAX + x}
    wire pm_we = rq_v && L.maxpool;
    wire [PAW:0] pm_waddr = {pl_wsel, rq_tag[PAW-1:0]};
    wire [PAW:0] pm_raddr = {pl_rsel, e_ra};
    for (genvar l = 0; l < DG_TM; l++) begin : g_pool
        logic [7:0] mem [2 ** (PAW + 1)];
        logic [7:0] q;
        always_ff @(posedge clk) begin
            if (pm_we) mem[pm_waddr] <= rq_y[l*8 +: 8];
            q <= mem[pm_raddr];
        end
        assign pl_q[l] = q;
    end

    // packetizer: the packet being sent; its aligned beat k holds packet bytes
    // k*AB - off .. k*AB - off + AB-1, i.e. bytes AB - off .. 2*AB-1 - off of the window
    // {packet beat k, packet beat k-1} (pz_cur, pz_prev)
    logic pz_have, pz_cmd_done;
    logic [63:0] pz_addr;
    logic [WBL-1:0] pz_beats, pz_left;
    logic pz_lz, pz_l1;                 // pz_left == 0 / == 1, registered with it
    localparam int PKB = PK_BYTES / AB;              // beats of packet data
    if (PK_BYTES < AB || PK_BYTES % AB != 0) begin : g_pkb_chk
        $error("dg_writeback: a sums packet must be whole AXI beats");
    end
    logic [PK_BYTES*8-1:0] pz_data;     // the packet's data, as loaded (a beat select, no shift per beat)
    // the packet beat sent now: a binary index, so the select is one LUT6 per bit at PKB = 4.
    // Past the data (the last beat of an unaligned packet) it wraps to a data beat: those
    // bytes are past the packet's end, never strobed (pz_rem)
    localparam int PBL = (PKB > 1) ? $clog2(PKB) : 1;
    logic [PBL-1:0] pz_bi;
    wire [AB*8-1:0] pz_cur = pz_data[32'(pz_bi) % PKB * AB * 8 +: AB * 8];
    logic [AB*8-1:0] pz_prev;           // the packet beat before the current (0 before the first)
    logic [ABL-1:0] pz_off;             // the packet's first byte in its first AXI beat
    logic [9:0] pz_rem;                 // off + nbytes - k*AB: bytes from this beat's start to the end
    logic pz_first;                     // beat 0 (its bytes below off are not the packet's)

    // ------------------------------------------------------------------ requantizer inputs
    // the pixel's bias, selected apart from its add: written inside the add, Yosys made the
    // select the carry chain's DI operand, one LUT for the select and one for the sum bit;
    // apart, the carry chain takes s1_acc as DI and the select merges into the sum bit's LUT
    logic [31:0] s1_bias [DG_TM];
    always_comb for (int l = 0; l < DG_TM; l++) s1_bias[l] = l_dw ? dw_bias_q[l] : bk_bias[s1_gb][l];
    always_ff @(posedge clk) begin
        if (s1_adv) begin
            s1_acc <= wbq_out[DG_TM*32-1:0];
            s1_tag <= wbq_out[WBQ_W-1:DG_TM*32];
        end
        if (s2_adv) begin
            for (int l = 0; l < DG_TM; l++) begin
                rq_acc[l*33 +: 33] <= s1_res_only ? 33'd0
                    : 33'($signed(s1_acc[l*32 +: 32])) + 33'($signed(s1_bias[l]));
                rq_mult[l*32 +: 32] <= l_dw ? dw_mult_q[l] : bk_mult[s1_gb][l];
                // tag = {res_only, tile_last, py, px, residual bytes [DG_TM]}
                rq_res[l*9 +: 9] <= L.residual ? (L.res_signed ? {s1_tag[l*8 + 7], s1_tag[l*8 +: 8]}
                                                              : {1'b0, s1_tag[l*8 +: 8]}) : 9'd0;
            end
            // (the pixel's first-of-tile / first-of-row flags ride along: no compare at the output)
            s2_tag <= {s1_py == 8'd0 && s1_px == 8'd0, s1_px == 8'd0, s1_tag[MTAG_W-1 -: 19],
                       PAW'(32'(s1_py) * CT_MAX + 32'(s1_px))};
        end
        if (rst) begin
            s1_v <= 1'b0;
            s2_v <= 1'b0;
        end else begin
            if (s1_adv) s1_v <= wbq_pop;
            if (s2_adv) s2_v <= s1_v;
        end
    end

    assign tr_pop = tr_pop_pl || (rq_v && rq_tag[PAW + 16] && !L.maxpool);
    // room for every result in flight (a push is registered: one more may be on its way)
    wire pk_room = 32'(pkq_count) + 32'(rq_inflight) + 32'd2 < PKQ_DEPTH
                   && 32'(skq_count) + 32'(rq_inflight) + 32'd1 < SKQ_DEPTH;
    // (max-pool: results of the tile after the one being pooled go to the other half)
    assign wbq_pop = wbq_valid && pk_room && s1_adv && (pl_state == PL_IDLE || L.maxpool);

    // packetizer: take sums first, then pixels
    wire pz_take_s = skq_valid;
    // a pixel packet in the sums packet's layout, its data shifted up by its address mod 4
    // bytes (a 4-way select per bit): every packet's data then starts at a multiple of 4 bytes
    // in its beat, so the beat aligner rotates by 4 * (off / 4) only (a 4-way select per bit,
    // not AB-way). Sums packets are 4-byte aligned: the SUMS base is int32-aligned (the HLS
    // engine's s32 pointer), sums offsets AXI-aligned, and every sum at a multiple of 4
    wire [PKT_W-1:0] pk_ext = {pkq_out[PXT_W-1 -: 72],
                               (PK_BYTES*8)'(pkq_out[PX_BYTES*8-1:0]) << (32'(pkq_out[PXT_W-64 +: 2]) * 8)};
    wire [PKT_W-1:0] pz_next = pz_take_s ? skq_out : pk_ext;
    wire [ABL-1:0] pzn_off = pz_next[PKT_W-64 +: ABL];
    wire [7:0] pzn_n = pz_next[PKT_W-65 -: 8];
    wire [2*AB*8-1:0] pz_win = {pz_cur, pz_prev} << ((32'(pz_off) >> 2) * 32);
    wire pz_next_valid = skq_valid || pkq_valid;
    wire pz_cmd_fire = wcmd_valid && wcmd_ready;
    wire pz_data_fire = wd_valid && wd_ready;
    wire pz_cmd_ok = pz_cmd_done || pz_cmd_fire;
    wire pz_data_ok = pz_lz || (pz_data_fire && pz_l1);
    wire pz_free = !pz_have || (pz_cmd_ok && pz_data_ok);
    assign pkq_pop = pz_free && !pz_take_s && pkq_valid;
    assign skq_pop = pz_free && pz_take_s;
    always_comb begin
        wcmd_valid = pz_have && !pz_cmd_done;
        wcmd_addr = pz_addr & ~64'(AB - 1);
        wcmd_beats = 24'(pz_beats);
        wd_valid = pz_have && !pz_lz;
        wd_data = pz_win[2*AB*8-1 -: AB*8];
        for (int i = 0; i < AB; i++)
            wd_strb[i] = 10'(i) < pz_rem && (!pz_first || ABL'(i) >= pz_off);
    end

    // (pkq_push / skq_push: a packet registered on its way into its queue, e.g. the layer's
    // last pixel and sums in the cycle after its tile record pops, when wb_gdone already
    // counts the group: without them the layer could end before its last writes)
    assign wb_idle = !wbq_valid && rq_inflight == 0 && pl_state == PL_IDLE && !pl_pend && !pkq_valid && !skq_valid
                   && !pkq_push && !skq_push && !pz_have && !tr_valid && !rq_v;

    task automatic pl_start(input logic half);   // pool the tile in `half`
        pl_rsel <= half;
        pl_state <= PL_RUN;
        pl_oy <= 8'd0;
        pl_ox <= 8'd0;
        pl_w <= 4'd0;
        pl_wx <= 2'd0;
        pl_first <= 1'b1;
        pl_rv <= 1'b0;
        pl_any <= 1'b0;
    endtask

    // the pixel at the requantizer's output: first of its tile / of its row (raster order)
    wire rq_first = rq_tag[RTAG_W-1];
    wire rq_rowst = rq_tag[RTAG_W-2];
    logic [63:0] px_rn, px_nx;      // next row's first pixel / next pixel (non-pool addresses)
    wire [63:0] px_a = rq_first ? h_base : (rq_rowst ? px_rn : px_nx);
    // the output pixel whose bytes go out this cycle: the requantizer's result, or with a
    // fused max-pool the pooled pixel PL_EMIT emits (the requantizer's go to the pool RAMs)
    wire ob_fire = L.maxpool ? (pl_state == PL_EMIT && pl_emit_room) : rq_v;
    wire ob_last = L.maxpool ? pl_last_px : rq_tag[PAW + 16];
    // pixel_sums: the pixel's sums packet address, 4x its byte offset in the output map (one
    // adder for the requantizer's and the pooled pixels)
    wire [63:0] ob_sa = ((L.maxpool ? pe_a : px_a) << 2) + sums_delta;
    // the channel sums with the output pixel going out: with pixel_sums the sums restart at
    // every pixel, so sums + pixel is the pixel's value and the sums queue takes the adder's
    // output either way; the sums clear as one synchronous reset (no select per bit); in the
    // model branch the extended byte is selected apart from the add (see s1_bias)
    logic signed [31:0] sums_s [DG_TM];
`ifdef SYNTHESIS
    // The adds in DSP48E2s (one per lane; the black box of dg_mac_array.sv), not 32-bit fabric
    // adders: P = (A or D) * 1 + C, C = sums, A / D = the requantizer's / the pooled pixel's
    // byte extended (out_signed), the source picked by the DSP's dynamic INMODE (A off and
    // D on with a fused max-pool), no fabric select; no register (OPMODE Z = C, X = Y = M,
    // W = 0). Same values as the model below; sums_s is P's low 32 bits.
    for (genvar l = 0; l < DG_TM; l++) begin : g_sum
        wire [47:0] sp;
        wire ext_r = L.out_signed && rq_y[l*8 + 7];
        wire ext_p = L.out_signed && pl_max[l][7];
        DSP48E2 #(.AREG(0), .ACASCREG(0), .BREG(0), .BCASCREG(0), .DREG(0), .ADREG(0),
                  .MREG(0), .PREG(0), .CREG(0), .INMODEREG(0), .OPMODEREG(0),
                  .ALUMODEREG(0), .CARRYINREG(0), .CARRYINSELREG(0),
                  .AMULTSEL("AD"), .BMULTSEL("B"), .PREADDINSEL("A"),
                  .USE_MULT("MULTIPLY"), .USE_SIMD("ONE48"))
        dsp (.CLK(clk), .A({{22{ext_r}}, rq_y[l*8 +: 8]}), .D({{19{ext_p}}, pl_max[l]}),
             .B(18'd1), .C(48'($signed(sums[l]))), .PCIN(48'd0),
             .ACIN(30'd0), .BCIN(18'd0), .CARRYCASCIN(1'b0), .MULTSIGNIN(1'b0),
             .CARRYIN(1'b0), .CARRYINSEL(3'b000),
             .INMODE({2'b00, L.maxpool, L.maxpool, 1'b0}),
             .OPMODE(9'b00_011_01_01), .ALUMODE(4'b0000),
             .CEA1(1'b1), .CEA2(1'b1), .CEAD(1'b1), .CEALUMODE(1'b1), .CEB1(1'b1),
             .CEB2(1'b1), .CEC(1'b1), .CECARRYIN(1'b1), .CECTRL(1'b1), .CED(1'b1),
             .CEINMODE(1'b1), .CEM(1'b1), .CEP(1'b1), .RSTA(1'b0),
             .RSTALLCARRYIN(1'b0), .RSTALUMODE(1'b0), .RSTB(1'b0), .RSTC(1'b0),
             .RSTCTRL(1'b0), .RSTD(1'b0), .RSTINMODE(1'b0), .RSTM(1'b0), .RSTP(1'b0),
             .P(sp));
        assign sums_s[l] = sp[31:0];
    end
`else
    wire [DG_TM*8-1:0] ob_y = L.maxpool ? pl_max_packed : rq_y;
    logic [31:0] ob_yx [DG_TM];
    always_comb
        for (int l = 0; l < DG_TM; l++) begin
            ob_yx[l] = L.out_signed ? 32'($signed(ob_y[l*8 +: 8])) : 32'(ob_y[l*8 +: 8]);
            sums_s[l] = sums[l] + ob_yx[l];
        end
`endif
    wire sums_clr = rst || run_init || (ob_fire && (ob_last || L.pixel_sums));
    always_ff @(posedge clk)
        for (int l = 0; l < DG_TM; l++)
            if (sums_clr) sums[l] <= 32'sd0;
            else if (ob_fire) sums[l] <= sums_s[l];

    always_ff @(posedge clk) begin
        pkq_push <= 1'b0;
        skq_push <= 1'b0;
        tr_pop_pl <= 1'b0;
        if (run_init) begin
            wb_gdone <= 16'd0;
            pl_wsel <= 1'b0;
            pl_pend <= 1'b0;
        end
        pl_emit_room <= 32'(pkq_count) + 32'd2 < PKQ_DEPTH && (!L.pixel_sums || 32'(skq_count) + 32'd3 < SKQ_DEPTH);
        pl_out <= run_init ? 2'd0 : pl_out + 2'(start_fire && L.maxpool) - 2'(pl_state == PL_SUMS);
        // -------------------------------------------------------------- write-back
        rq_inflight <= rq_inflight + 4'(wbq_pop) - 4'(rq_v);
        if (tr_pop && tr_glast) wb_gdone <= wb_gdone + 16'd1;
        if (rq_v) begin
            logic tlast;
            tlast = rq_tag[PAW + 16];
            if (L.maxpool) begin
                // (the pool RAM write is g_pool's)
                if (tlast) begin
                    pl_wsel <= !pl_wsel;
                    if (pl_state == PL_IDLE) pl_start(pl_wsel);
                    else if (pl_state != PL_SUMS) pl_pend <= 1'b1;   // PL_SUMS starts it below
                end
            end else begin
                pkq_push <= 1'b1;
                pkq_in <= {px_a, h_mg, rq_y};
                if (rq_rowst) px_rn <= px_a + row_step;
                px_nx <= px_a + 64'(L.cout_st);
                if (L.pixel_sums) begin
                    skq_in[PKT_W-1 -: 72] <= {ob_sa, h_mg4};
                    skq_push <= L.emit_sums;
                end else if (tlast) begin
                    // the tile record pops combinationally (tr_pop) so a back-to-back
                    // first pixel of the next tile already sees its own record and slot
                    skq_in[PKT_W-1 -: 72] <= {h_sums, h_mg4};
                    skq_push <= L.emit_sums;
                end
            end
        end
        // the channel sums of the output pixel going out (sums_s: one adder per lane)
        if (ob_fire) for (int l = 0; l < DG_TM; l++) skq_in[l*32 +: 32] <= sums_s[l];
        // max-pool: 9 reads per output pixel, then emit
        case (pl_state)
            PL_RUN: begin
                pl_first <= 1'b0;
                if (pl_first) begin
                    pb_ra <= e_ra;
                    pr_ra <= e_ra;
                    pb_gy <= e_gy;
                    pb_gx <= e_gx;
                    pr_gx <= e_gx;
                    pe_a <= h_base;
                    pe_rn <= h_base + row_step;
                end
                pl_rv <= pl_w != 4'd9;
                // this output pixel ends its row / the tile (for PL_EMIT)
                pl_row_end <= pl_ox + 8'd1 == tr_ow;
                pl_last_px <= pl_ox + 8'd1 == tr_ow && pl_oy + 8'd1 == tr_oh;
                pl_rvalid <= e_gy >= 0 && e_gy < $signed({2'b0, L.conv_h}) && e_gx >= 0 && e_gx < $signed({2'b0, L.conv_w});
                // the next window position
                if (pl_wx == 2'd2) begin
                    pl_wx <= 2'd0;
                    pl_ra <= e_ra + PAW'(CT_MAX - 2);
                    pl_gy <= e_gy + GW'(1);
                    pl_gx <= e_gx - GW'(2);
                end else begin
                    pl_wx <= pl_wx + 2'd1;
                    pl_ra <= e_ra + PAW'(1);
                    pl_gy <= e_gy;
                    pl_gx <= e_gx + GW'(1);
                end
                // fold the value read last cycle
                if (pl_rv && pl_rvalid) begin
                    for (int l = 0; l < DG_TM; l++) begin
                        logic greater;
                        greater = L.out_signed ? ($signed(pl_q[l]) > $signed(pl_max[l])) : (pl_q[l] > pl_max[l]);
                        if (!pl_any || greater) pl_max[l] <= pl_q[l];
                    end
                    pl_any <= 1'b1;
                end
                if (pl_w == 4'd9) begin
                    pl_state <= PL_EMIT;
                end else pl_w <= pl_w + 4'd1;
            end
            PL_EMIT: begin
                // (pixel_sums: one sums packet per pixel too; a push may still be in flight)
                if (pl_emit_room) begin
                    logic last_px, row_end;
                    pkq_push <= 1'b1;
                    pkq_in <= {pe_a, h_mg, pl_max_packed};
                    row_end = pl_row_end;
                    last_px = pl_last_px;
                    if (L.pixel_sums) begin
                        skq_in[PKT_W-1 -: 72] <= {ob_sa, h_mg4};
                        skq_push <= L.emit_sums;
                    end
                    pl_w <= 4'd0;
                    pl_wx <= 2'd0;
                    pl_rv <= 1'b0;
                    pl_any <= 1'b0;
                    if (row_end) begin
                        pl_ox <= 8'd0;
                        pl_oy <= pl_oy + 8'd1;
                        pl_ra <= pr_ra + PAW'(2 * CT_MAX);
                        pb_ra <= pr_ra + PAW'(2 * CT_MAX);
                        pr_ra <= pr_ra + PAW'(2 * CT_MAX);
                        pl_gy <= pb_gy + GW'(2);
                        pb_gy <= pb_gy + GW'(2);
                        pl_gx <= pr_gx;
                        pb_gx <= pr_gx;
                        pe_a <= pe_rn;
                        pe_rn <= pe_rn + row_step;
                    end else begin
                        pl_ox <= pl_ox + 8'd1;
                        pl_ra <= pb_ra + PAW'(2);
                        pb_ra <= pb_ra + PAW'(2);
                        pl_gy <= pb_gy;
                        pl_gx <= pb_gx + GW'(2);
                        pb_gx <= pb_gx + GW'(2);
                        pe_a <= pe_a + 64'(L.cout_st);
                    end
                    if (last_px) begin
                        if (!L.pixel_sums) begin
                            skq_in[PKT_W-1 -: 72] <= {h_sums, h_mg4};
                            skq_push <= L.emit_sums;
                        end
                        tr_pop_pl <= 1'b1;
                        pl_state <= PL_SUMS;
                    end else pl_state <= PL_RUN;
                end
            end
            PL_SUMS: begin
                // the next tile, complete in the other half (before or in this cycle)
                if (pl_pend || (rq_v && L.maxpool && rq_tag[PAW + 16])) begin
                    pl_start(!pl_rsel);
                    pl_pend <= 1'b0;
                end else pl_state <= PL_IDLE;
            end
            default: ;
        endcase

        // -------------------------------------------------------------- packetizer
        if (pz_have) begin
            if (pz_cmd_fire) pz_cmd_done <= 1'b1;
            if (pz_data_fire) begin
                pz_left <= pz_left - WBL'(1);
                pz_lz <= pz_l1;
                pz_l1 <= pz_left == WBL'(2);
                pz_bi <= pz_bi + PBL'(1);
                pz_prev <= pz_cur;
                pz_rem <= pz_rem - 10'(AB);
                pz_first <= 1'b0;
            end
        end
        if (pz_free) begin
            pz_have <= pz_next_valid;
            if (pz_next_valid) begin
                pz_addr <= pz_next[PKT_W-1 -: 64];
                pz_beats <= WBL'((32'(pzn_off) + 32'(pzn_n) + AB - 1) >> ABL);
                pz_left <= WBL'((32'(pzn_off) + 32'(pzn_n) + AB - 1) >> ABL);
                pz_lz <= pzn_off == '0 && pzn_n == 8'd0;
                pz_l1 <= 32'(pzn_off) + 32'(pzn_n) - 32'd1 < AB;     // 1 .. AB bytes from the beat start
                pz_cmd_done <= 1'b0;
                pz_data <= pz_next[PK_BYTES*8-1:0];
                pz_bi <= '0;
                pz_prev <= '0;
                pz_off <= pzn_off;
                pz_rem <= 10'(pzn_off) + 10'(pzn_n);
                pz_first <= 1'b1;
            end
        end


        if (rst) begin
            pl_state <= PL_IDLE;
            pl_pend <= 1'b0;
            pl_out <= 2'd0;
            rq_inflight <= '0;
            pz_have <= 1'b0;
        end
    end

`ifndef SYNTHESIS
    // the counters against the products they replace (every RTL simulation checks them)
    always_ff @(posedge clk) if (!rst) begin
        if (rq_v && !L.maxpool) begin
            if (!tr_valid || !ts_ok[ts_rp])
                $error("dg_writeback: pixel without its tile record / slot");
            else if (px_a != L.out_abs + ((64'(tr_o0y) + 64'(rq_tag[PAW + 8 +: 8])) * 64'(L.out_w)
                                         + 64'(tr_o0x) + 64'(rq_tag[PAW +: 8])) * 64'(L.cout_st)
                              + 64'(l_dw ? 16'(32'(tr_out[15:0]) * DG_TM) : bk_m0[tr_out[TR_W-1]]))
                $error("dg_writeback: pixel address counter (pixels not in raster order?)");
        end
        if (pl_state == PL_RUN && pl_w != 4'd9) begin
            logic signed [31:0] gy, gx;
            gy = 32'd2 * (32'(tr_o0y) + 32'(pl_oy)) - 32'd1 + 32'(pl_w) / 3;
            gx = 32'd2 * (32'(tr_o0x) + 32'(pl_ox)) - 32'd1 + 32'(pl_w) % 3;
            if (!tr_valid || !ts_ok[ts_rp] || 32'(e_gy) != gy || 32'(e_gx) != gx
                || (gy >= 0 && gy < 32'(L.conv_h) && gx >= 0 && gx < 32'(L.conv_w)
                    && e_ra != PAW'((gy - 32'(tr_out[TR_W-51 -: 16])) * CT_MAX + gx - 32'(tr_out[TR_W-67 -: 16]))))
                $error("dg_writeback: max-pool window counters");
        end
        if (pl_state == PL_EMIT && pe_a != L.out_abs + ((64'(tr_o0y) + 64'(pl_oy)) * 64'(L.out_w)
                                                       + 64'(tr_o0x) + 64'(pl_ox)) * 64'(L.cout_st)
                                            + 64'(bk_m0[tr_out[TR_W-1]]))
            $error("dg_writeback: max-pool output address counter");
        if (skq_valid && skq_out[PKT_W-64 +: 2] != 2'd0)
            $error("dg_writeback: a sums packet not 4-byte aligned (SUMS base not int32-aligned?)");
        if (pz_have && (pz_lz != (pz_left == '0) || pz_l1 != (pz_left == WBL'(1))))
            $error("dg_writeback: packetizer beat flags");
        if (rq_v && (rq_first != (rq_tag[PAW +: 16] == 16'd0) || rq_rowst != (rq_tag[PAW +: 8] == 8'd0)))
            $error("dg_writeback: pixel position flags");
        if (rq_v && L.maxpool && 32'(rq_tag[PAW-1:0]) >= PPIX)
            $error("dg_writeback: conv pixel outside the pool buffer");
    end
`endif
    wire unused_ok = &{1'b0, L, wbq_in_ready, tr_count, skq_in_ready, pkq_in_ready, rq_tag, tr_out, s1_tag, pz_win,
                       pz_beats, ts_ok, s1_sg};
endmodule
`default_nettype wire
