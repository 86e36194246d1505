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
    input  wire [31:0]                  dw_bias [SG_MAX][DG_TM],
    input  wire [31:0]                  dw_mult [SG_MAX][DG_TM],
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
    localparam int WIN_BEATS = (PK_BYTES + AB - 1) / AB + 1;
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
    wire [DG_TM*32-1:0] wq_acc = wbq_out[DG_TM*32-1:0];
    wire [MTAG_W-1:0] wq_tag = wbq_out[WBQ_W-1:DG_TM*32];
    wire wq_res_only = wq_tag[MTAG_W-2];
    logic [DG_TM*33-1:0] rq_acc;
    logic [DG_TM*32-1:0] rq_mult;
    logic [DG_TM*9-1:0] rq_res;
    wire rq_v;
    wire [DG_TM*8-1:0] rq_y;
    wire [18:0] rq_tag;
    wire wq_gb = wq_tag[MTAG_W-1];
    wire [15:0] wq_sg = wq_tag[DG_TM * 8 +: 16];
    logic [2:0] rq_inflight;
    wire rq_in_ready;
    // RQ_SHARE cycles per pixel (dg_pkg): DG_TM / RQ_SHARE lanes of multipliers
    dg_requant #(.LANES(DG_TM), .SHARE(RQ_SHARE), .TAG_W(19)) rq (
        .clk(clk), .rst(rst), .in_valid(wbq_pop), .in_ready(rq_in_ready), .in_acc(rq_acc), .in_mult(rq_mult), .in_res(rq_res),
        .res_mult(L.res_mult), .shift(L.shift), .out_signed(L.out_signed), .in_tag(wq_tag[MTAG_W-1 -: 19]),
        .out_valid(rq_v), .out_y(rq_y), .out_tag(rq_tag));

    // write packets: pixels (pkq) and sums (skq): {addr, nbytes, data}
    localparam int PKT_W = 64 + 8 + PK_BYTES * 8;
    logic [PKT_W-1:0] pkq_in, skq_in;
    logic pkq_push, skq_push;
    wire pkq_in_ready, pkq_valid, skq_in_ready, skq_valid;
    wire [PKT_W-1:0] pkq_out, skq_out;
    logic pkq_pop, skq_pop;
    wire [$clog2(PKQ_DEPTH):0] pkq_count;
    wire [2:0] skq_count;
    dg_fifo #(.WIDTH(PKT_W), .DEPTH(PKQ_DEPTH)) pk_fifo (
        .clk(clk), .rst(rst), .in_data(pkq_in), .in_valid(pkq_push), .in_ready(pkq_in_ready),
        .out_data(pkq_out), .out_valid(pkq_valid), .out_ready(pkq_pop), .count(pkq_count));
    dg_fifo #(.WIDTH(PKT_W), .DEPTH(4)) sk_fifo (
        .clk(clk), .rst(rst), .in_data(skq_in), .in_valid(skq_push), .in_ready(skq_in_ready),
        .out_data(skq_out), .out_valid(skq_valid), .out_ready(skq_pop), .count(skq_count));
    logic signed [31:0] sums [DG_TM];
    // max-pool
    logic [7:0] pool_mem [2][DG_TM][PPIX];   // conv pixel (y, x) of a tile at y * CT_MAX + x
    typedef enum logic [1:0] {PL_IDLE, PL_RUN, PL_EMIT, PL_SUMS} pl_state_t;
    pl_state_t pl_state;
    logic pl_wsel;                  // half the MAC results of the current tile go to
    logic pl_rsel;                  // half being pooled
    logic pl_pend;                  // the other half holds a complete tile, waiting to be pooled
    logic [1:0] pl_out;             // tiles started and not yet pooled
    assign wb_busy = pl_out >= 2'd2;
    logic [7:0] pl_oy, pl_ox;
    logic [3:0] pl_w;               // window position 0..8 being read
    logic pl_rv, pl_rvalid;         // read issued last cycle / its position is inside the map
    logic [7:0] pl_q [DG_TM];
    logic [7:0] pl_max [DG_TM];
    logic pl_any;
    logic [DG_TM*8-1:0] pl_max_packed;
    always_comb for (int l = 0; l < DG_TM; l++) pl_max_packed[l*8 +: 8] = pl_max[l];
    // packetizer
    logic pz_have, pz_cmd_done;
    logic [63:0] pz_addr;
    logic [7:0] pz_beats, pz_beat;
    logic [WIN_BEATS*AB*8-1:0] pz_data;
    logic [WIN_BEATS*AB-1:0] pz_strb;

    // ================================================================== tile record fields
    wire        tr_gb = tr_out[TR_W-1];
    wire        tr_glast = tr_out[TR_W-2];
    wire [15:0] tr_idx = tr_out[TR_W-3 -: 16];
    wire [15:0] tr_o0y = tr_out[TR_W-19 -: 16];
    wire [15:0] tr_o0x = tr_out[TR_W-35 -: 16];
    wire [15:0] tr_cy0 = tr_out[TR_W-51 -: 16];
    wire [15:0] tr_cx0 = tr_out[TR_W-67 -: 16];
    wire [7:0]  tr_oh = tr_out[47:40];
    wire [7:0]  tr_ow = tr_out[39:32];
    wire [7:0]  tr_chw = tr_out[23:16];
    wire [15:0] tr_sg = tr_out[15:0];
    // the group's first output channel slot and lanes: the loader bank's, or (depthwise)
    // the tile pass's m-group
    wire [15:0] dw_m0 = 16'(32'(tr_sg) * DG_TM);
    wire [7:0]  dw_mg = (32'(L.n_out) - 32'(dw_m0) > DG_TM) ? 8'(DG_TM) : 8'(L.n_out - dw_m0);
    function automatic logic [15:0] grp_m0(input logic gb);
        return L.dw ? dw_m0 : bk_m0[gb];
    endfunction
    function automatic logic [7:0] grp_mg(input logic gb);
        return L.dw ? dw_mg : bk_mg[gb];
    endfunction

    // ------------------------------------------------------------------ write-back combinational
    always_comb begin
        for (int l = 0; l < DG_TM; l++) begin
            rq_acc[l*33 +: 33] = wq_res_only ? 33'd0
                : 33'($signed(wq_acc[l*32 +: 32]))
                  + 33'($signed(L.dw ? dw_bias[I_SG'(wq_sg)][l] : bk_bias[wq_gb][l]));
            rq_mult[l*32 +: 32] = L.dw ? dw_mult[I_SG'(wq_sg)][l] : bk_mult[wq_gb][l];
            // tag = {res_only, tile_last, py, px, residual bytes [DG_TM]}
            rq_res[l*9 +: 9] = L.residual ? (L.res_signed ? {wq_tag[l*8 + 7], wq_tag[l*8 +: 8]}
                                                          : {1'b0, wq_tag[l*8 +: 8]}) : 9'd0;
        end
    end
    assign tr_pop = tr_pop_pl || (rq_v && rq_tag[16] && !L.maxpool);
    wire pk_room = 32'(pkq_count) + 32'(rq_inflight) + 32'd2 < PKQ_DEPTH && 32'(skq_count) + 32'(rq_inflight) < 3;
    // (max-pool: results of the tile after the one being pooled go to the other half)
    assign wbq_pop = wbq_valid && pk_room && rq_in_ready && (pl_state == PL_IDLE || L.maxpool);

    // packetizer: take sums first, then pixels
    wire pz_take_s = skq_valid;
    wire [PKT_W-1:0] pz_next = pz_take_s ? skq_out : pkq_out;
    wire pz_next_valid = skq_valid || pkq_valid;
    wire pz_cmd_fire = wcmd_valid && wcmd_ready;
    wire pz_data_fire = wd_valid && wd_ready;
    wire pz_cmd_ok = pz_cmd_done || pz_cmd_fire;
    wire pz_data_ok = (pz_beat == pz_beats) || (pz_data_fire && pz_beat + 8'd1 == pz_beats);
    wire pz_free = !pz_have || (pz_cmd_ok && pz_data_ok);
    assign pkq_pop = pz_free && !pz_take_s && pkq_valid;
    assign skq_pop = pz_free && pz_take_s;
    always_comb begin
        wcmd_valid = pz_have && !pz_cmd_done;
        wcmd_addr = pz_addr & ~64'(AB - 1);
        wcmd_beats = 24'(pz_beats);
        wd_valid = pz_have && pz_beat != pz_beats;
        wd_data = pz_data[32'(pz_beat) * AB * 8 +: AB * 8];
        wd_strb = pz_strb[32'(pz_beat) * AB +: AB];
    end

    assign wb_idle = !wbq_valid && rq_inflight == 0 && pl_state == PL_IDLE && !pl_pend && !pkq_valid && !skq_valid
                   && !pz_have && !tr_valid && !rq_v;

    task automatic pl_start(input logic half);   // pool the tile in `half`
        pl_rsel <= half;
        pl_state <= PL_RUN;
        pl_oy <= 8'd0;
        pl_ox <= 8'd0;
        pl_w <= 4'd0;
        pl_rv <= 1'b0;
        pl_any <= 1'b0;
    endtask

    always_ff @(posedge clk) begin
        pkq_push <= 1'b0;
        skq_push <= 1'b0;
        tr_pop_pl <= 1'b0;
        if (run_init) begin
            wb_gdone <= 16'd0;
            pl_wsel <= 1'b0;
            pl_pend <= 1'b0;
        end
        pl_out <= run_init ? 2'd0 : pl_out + 2'(start_fire && L.maxpool) - 2'(pl_state == PL_SUMS);
        // -------------------------------------------------------------- write-back
        rq_inflight <= rq_inflight + 3'(wbq_pop) - 3'(rq_v);
        if (tr_pop && tr_glast) wb_gdone <= wb_gdone + 16'd1;
        if (rq_v) begin
            logic [15:0] py, px;
            logic [63:0] a;
            logic tlast;
            logic gb;
            py = 16'(rq_tag[15:8]);
            px = 16'(rq_tag[7:0]);
            tlast = rq_tag[16];
            gb = rq_tag[18];
            if (L.maxpool) begin
                for (int l = 0; l < DG_TM; l++) pool_mem[pl_wsel][l][32'(py) * CT_MAX + 32'(px)] <= rq_y[l*8 +: 8];
                if (tlast) begin
                    pl_wsel <= !pl_wsel;
                    if (pl_state == PL_IDLE) pl_start(pl_wsel);
                    else if (pl_state != PL_SUMS) pl_pend <= 1'b1;   // PL_SUMS starts it below
                end
            end else begin
                a = L.out_abs + ((64'(tr_o0y) + 64'(py)) * 64'(L.out_w) + 64'(tr_o0x) + 64'(px)) * 64'(L.cout_st) + 64'(grp_m0(gb));
                pkq_push <= 1'b1;
                pkq_in <= {a, grp_mg(gb), (PK_BYTES*8)'(rq_y)};
                for (int l = 0; l < DG_TM; l++) begin
                    logic signed [31:0] v, s;
                    v = L.out_signed ? 32'($signed(rq_y[l*8 +: 8])) : 32'(rq_y[l*8 +: 8]);
                    s = sums[l] + v;
                    sums[l] <= tlast ? 32'sd0 : s;
                    skq_in[l*32 +: 32] <= L.pixel_sums ? v : s;
                end
                if (L.pixel_sums) begin
                    skq_in[PKT_W-1 -: 72] <= {L.sums_abs + ((a - L.out_abs) << 2), 8'(32'(grp_mg(gb)) * 4)};
                    skq_push <= L.emit_sums;
                end else if (tlast) begin
                    // the tile record pops combinationally (tr_pop_px) so a back-to-back
                    // first pixel of the next tile already sees its own record
                    skq_in[PKT_W-1 -: 72] <= {L.sums_abs + (64'(tr_idx) * 64'(L.cout_st) + 64'(grp_m0(gb))) * 64'd4, 8'(32'(grp_mg(gb)) * 4)};
                    skq_push <= L.emit_sums;
                end
            end
        end
        // max-pool: 9 reads per output pixel, then emit
        case (pl_state)
            PL_RUN: begin
                logic signed [31:0] gy, gx, cy, cx;
                gy = 32'd2 * (32'(tr_o0y) + 32'(pl_oy)) - 32'd1 + 32'(pl_w) / 3;
                gx = 32'd2 * (32'(tr_o0x) + 32'(pl_ox)) - 32'd1 + 32'(pl_w) % 3;
                cy = gy - 32'(tr_cy0);
                cx = gx - 32'(tr_cx0);
                pl_rv <= pl_w != 4'd9;
                pl_rvalid <= gy >= 0 && gy < 32'(L.conv_h) && gx >= 0 && gx < 32'(L.conv_w);
                for (int l = 0; l < DG_TM; l++) pl_q[l] <= pool_mem[pl_rsel][l][$clog2(PPIX)'(cy * CT_MAX + cx)];
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
                if (32'(pkq_count) + 32'd1 < PKQ_DEPTH && (!L.pixel_sums || 32'(skq_count) + 32'd2 < 4)) begin
                    logic [63:0] a;
                    logic last_px;
                    a = L.out_abs + ((64'(tr_o0y) + 64'(pl_oy)) * 64'(L.out_w) + 64'(tr_o0x) + 64'(pl_ox)) * 64'(L.cout_st) + 64'(bk_m0[tr_gb]);
                    pkq_push <= 1'b1;
                    pkq_in <= {a, bk_mg[tr_gb], (PK_BYTES*8)'(pl_max_packed)};
                    last_px = pl_ox + 8'd1 == tr_ow && pl_oy + 8'd1 == tr_oh;
                    for (int l = 0; l < DG_TM; l++) begin
                        logic signed [31:0] v, s;
                        v = L.out_signed ? 32'($signed(pl_max[l])) : 32'(pl_max[l]);
                        s = sums[l] + v;
                        sums[l] <= last_px ? 32'sd0 : s;
                        skq_in[l*32 +: 32] <= L.pixel_sums ? v : s;
                    end
                    if (L.pixel_sums) begin
                        skq_in[PKT_W-1 -: 72] <= {L.sums_abs + ((a - L.out_abs) << 2), 8'(32'(bk_mg[tr_gb]) * 4)};
                        skq_push <= L.emit_sums;
                    end
                    pl_w <= 4'd0;
                    pl_rv <= 1'b0;
                    pl_any <= 1'b0;
                    if (pl_ox + 8'd1 == tr_ow) begin
                        pl_ox <= 8'd0;
                        pl_oy <= pl_oy + 8'd1;
                    end else pl_ox <= pl_ox + 8'd1;
                    if (last_px) begin
                        if (!L.pixel_sums) begin
                            skq_in[PKT_W-1 -: 72] <= {L.sums_abs + (64'(tr_idx) * 64'(L.cout_st) + 64'(bk_m0[tr_gb])) * 64'd4, 8'(32'(bk_mg[tr_gb]) * 4)};
                            skq_push <= L.emit_sums;
                        end
                        tr_pop_pl <= 1'b1;
                        pl_state <= PL_SUMS;
                    end else pl_state <= PL_RUN;
                end
            end
            PL_SUMS: begin
                // the next tile, complete in the other half (before or in this cycle)
                if (pl_pend || (rq_v && L.maxpool && rq_tag[16])) begin
                    pl_start(!pl_rsel);
                    pl_pend <= 1'b0;
                end else pl_state <= PL_IDLE;
            end
            default: ;
        endcase

        // -------------------------------------------------------------- packetizer
        if (pz_have) begin
            if (pz_cmd_fire) pz_cmd_done <= 1'b1;
            if (pz_data_fire) pz_beat <= pz_beat + 8'd1;
        end
        if (pz_free) begin
            pz_have <= pz_next_valid;
            if (pz_next_valid) begin
                logic [63:0] a;
                logic [7:0] n;
                logic [ABL-1:0] off;
                a = pz_next[PKT_W-1 -: 64];
                n = pz_next[PKT_W-65 -: 8];
                off = a[ABL-1:0];
                pz_addr <= a;
                pz_cmd_done <= 1'b0;
                pz_beat <= 8'd0;
                pz_beats <= 8'((32'(off) + 32'(n) + AB - 1) >> ABL);
                pz_data <= (WIN_BEATS*AB*8)'(pz_next[PK_BYTES*8-1:0]) << (32'(off) * 8);
                pz_strb <= ((WIN_BEATS*AB)'(1) << n) - 1'b1 << off;
            end
        end


        if (rst) begin
            pl_state <= PL_IDLE;
            pl_pend <= 1'b0;
            pl_out <= 2'd0;
            rq_inflight <= '0;
            pz_have <= 1'b0;
            for (int l = 0; l < DG_TM; l++) sums[l] <= 32'sd0;
        end
    end
    wire unused_ok = &{1'b0, L, wbq_in_ready, tr_count, skq_in_ready, pkq_in_ready, rq_tag[17], wq_tag,
                       tr_out[31:24], tr_chw, wq_sg};
endmodule
`default_nettype wire
