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
    input  wire [15:0]                  bk_grp [2],
    input  wire [1:0]                   bk_ready,
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
    wire L_no_mac = L.n_in == 16'd0;   // no active input channel: acc = 0 (+ bias), no patch, no weights
    typedef enum logic [1:0] {CP_IDLE, CP_RUN} cp_state_t;
    cp_state_t cp_state;
    logic [7:0] cp_py, cp_px, cp_ky, cp_kx;
    logic [15:0] cp_ng;
    logic [WAW-1:0] cp_wa;
    logic [15:0] cp_o0, cp_ky0;    // im2col: lane 0's tap = byte cp_o0 of kernel row cp_ky0
    logic cp_res_only;
    logic cp_gb;                   // weight/param bank of the tile's group
    logic [7:0] cp_ny, cp_nx;      // loop extents (conv tile or output tile)
    logic [4:0] inflight;          // pixels issued whose sums are not yet in the write-back queue

    // step pipeline c1 / c2
    logic c1_first, c1_last, c1_ok, c1_res_only, c1_tlast;
    logic [DG_TN-1:0] c1_lane;
    logic [7:0] c1_py, c1_px;
    logic c2_first, c2_last, c2_ok, c2_res_only, c2_tlast, c2_gb;
    logic [DG_TN-1:0] c2_lane;
    logic [NBL-1:0] c2_rot;
    logic [7:0] c2_py, c2_px;
    logic [DG_TN*9-1:0] c2_x;
    dg_mac_array #(.TM(DG_TM), .TN(DG_TN), .TAG_W(MTAG_W)) mac (
        .clk(clk), .rst(rst), .in_valid(c2_v), .in_first(c2_first), .in_last(c2_last),
        .in_w(wb_q), .in_x(c2_x), .in_tag({c2_gb, c2_res_only, c2_tlast, c2_py, c2_px, rb_q}),
        .out_valid(mac_v), .out_acc(mac_acc), .out_tag(mac_tag));

    // ------------------------------------------------------------------ compute tile start
    // a tile in half h can start when it is complete, its group's bank is loaded, the
    // write-back can take its record, and (max-pool) a pool half is free (wb_busy: the
    // tile before the previous one is still being pooled)
    logic [1:0] cp_can_start;
    always_comb begin
        for (int h = 0; h < 2; h++)
            cp_can_start[h] = full[h] && tr_in_ready && !(L.maxpool && wb_busy)
                              && bk_ready[t_g[h][0]] && bk_grp[t_g[h][0]] == t_g[h];
    end
    task automatic cp_start(input logic h);
        cp_res_only <= t_res_only[h];
        cp_gb <= t_g[h][0];
        cp_ny <= (t_res_only[h] || L_no_mac) ? t_oh[h] : t_chy[h];
        cp_nx <= (t_res_only[h] || L_no_mac) ? t_ow[h] : t_chw[h];
        cp_py <= 8'd0;
        cp_px <= 8'd0;
        cp_ky <= 8'd0;
        cp_kx <= 8'd0;
        cp_ng <= 16'd0;
        cp_wa <= '0;
        cp_o0 <= 16'd0;
        cp_ky0 <= 16'd0;
        tr_push <= 1'b1;
        tr_in <= {t_g[h][0], t_glast[h], t_idx[h], t_o0y[h], t_o0x[h], t_cy0[h], t_cx0[h],
                  t_oh[h], t_ow[h], t_chy[h], t_chw[h]};
        cp_state <= CP_RUN;
    endtask

    // ------------------------------------------------------------------ compute issue (c0)
    wire [15:0] cp_r = 16'(32'(cp_py) * 32'(L.stride) + 32'(cp_ky));
    wire [15:0] cp_c = 16'(32'(cp_px) * 32'(L.stride) + 32'(cp_kx));
    wire [$clog2(PMAX)-1:0] cp_ri = $clog2(PMAX)'(cp_r);
    wire [$clog2(PMAX)-1:0] cp_ci = $clog2(PMAX)'(cp_c);
    wire [15:0] cp_bit = row_tb[cp_h][cp_ri] + 16'(col_t[cp_h][cp_ci]);
    wire cp_halo_ok = !L.zero_halo || (row_tv[cp_h][cp_ri] && col_tv[cp_h][cp_ci] && bitmap[I_MAX_TILES'(cp_bit)]);
    // im2col: lane 0's patch row and byte (rows hold patch column 0 at rowbase)
    wire [15:0] i2c_r0 = 16'(32'(cp_py) * 32'(L.stride) + 32'(cp_ky0));
    wire [31:0] i2c_cb = 32'(cp_px) * 32'(L.stride) * 32'(L.cin_st);
    wire [IAW-1:0] i2c_addr = IAW'(32'(cp_h) * IHALF) + rowbase[cp_h][$clog2(PMAX)'(i2c_r0)]
                              + IAW'(i2c_cb + 32'(cp_o0));
    logic [DG_TN-1:0] i2c_lane;
    logic [IAW-1:0] i2c_badd [NB];
    always_comb begin
        for (int b = 0; b < NB; b++) i2c_badd[b] = '0;
        for (int i = 0; i < DG_TN; i++) begin
            logic [31:0] t, m, o, row, w;
            logic fv, rv, cv;
            t = 32'(cp_o0) + 32'(i);
            m = 32'd0;                            // kernel rows past lane 0's: t div kc
            for (int q = 1; q <= DG_TN; q++) if (t >= 32'(q) * 32'(L.kc)) m = 32'(q);
            o = t - m * 32'(L.kc);
            fv = 32'(cp_wa) * DG_TN + 32'(i) < 32'(L.kkc);
            row = 32'(i2c_r0) + m;
            rv = fv && row < PMAX && row_ok[cp_h][$clog2(PMAX)'(row)];
            w = i2c_cb + o;
            cv = w >= 32'(t_lo[cp_h]) && w < 32'(t_hi[cp_h]);
            i2c_lane[i] = fv && rv && cv;
            i2c_badd[(32'(i2c_addr) + 32'(i)) % NB] = IAW'(m * 32'(L.i2c_dq));
        end
    end
    wire cp_ok = !cp_res_only && !L_no_mac && (L.im2col || (row_ok[cp_h][cp_ri] && col_ok[cp_h][cp_ci] && cp_halo_ok));
    wire [IAW-1:0] cp_addr = L.im2col ? i2c_addr
                           : IAW'(32'(cp_h) * IHALF) + rowbase[cp_h][cp_ri] + colbyte[cp_h][cp_ci] + IAW'(32'(cp_ng) * DG_TN);
    wire cp_first = cp_res_only || L_no_mac || (L.im2col ? cp_wa == '0 : (cp_ky == 0 && cp_kx == 0 && cp_ng == 0));
    wire cp_last = cp_res_only || L_no_mac || (L.im2col ? 32'(cp_wa) + 32'd1 == 32'(L.S)
                   : (cp_ky == 8'(L.k) - 8'd1 && cp_kx == 8'(L.k) - 8'd1 && cp_ng == L.N - 16'd1));
    wire cp_tlast = cp_last && cp_py == cp_ny - 8'd1 && cp_px == cp_nx - 8'd1;
    wire cp_stall = 32'(wbq_count) + 32'(inflight) >= WBQ_DEPTH - 2;
    wire cp_issue = cp_state == CP_RUN && !cp_stall;
    logic [DG_TN-1:0] cp_lane;
    always_comb begin
        for (int i = 0; i < DG_TN; i++) cp_lane[i] = L.im2col ? i2c_lane[i] : 32'(cp_ng) * DG_TN + i < 32'(L.n_in);
    end

    always_comb begin
        for (int i = 0; i < DG_TN; i++) begin
            logic [7:0] v;
            v = ib_q[(32'(c2_rot) + i) % NB];
            c2_x[i*9 +: 9] = (c2_ok && c2_lane[i]) ? (L.in_signed ? {v[7], v} : {1'b0, v}) : 9'd0;
        end
    end
    assign tile_done = run && cp_state == CP_RUN && cp_issue && cp_last && cp_px + 8'd1 == cp_nx
                       && cp_py + 8'd1 == cp_ny;
    assign start_fire = run && ((cp_state == CP_IDLE && cp_can_start[cp_h]) || (tile_done && cp_can_start[!cp_h]));
    assign idle = cp_state == CP_IDLE && inflight == 0 && !c1_v && !c2_v;

    always_ff @(posedge clk) begin
        tr_push <= 1'b0;
        if (run_init) cp_h <= 1'b0;
        // -------------------------------------------------------------- compute
        c1_v <= cp_issue;
        c1_first <= cp_first;
        c1_last <= cp_last;
        c1_ok <= cp_ok;
        c1_lane <= cp_lane;
        c1_addr <= cp_addr;
        for (int b = 0; b < NB; b++) c1_badd[b] <= L.im2col ? i2c_badd[b] : '0;
        c1_wa <= WAW'(cp_wa);
        c1_rbaddr <= $clog2(2*RPIX)'(32'(cp_h) * RPIX + 32'(cp_py) * 32'(t_ow[cp_h]) + 32'(cp_px));
        c1_res_only <= cp_res_only;
        c1_gb <= cp_gb;
        c1_tlast <= cp_tlast;
        c1_py <= cp_py;
        c1_px <= cp_px;
        c2_v <= c1_v;
        c2_first <= c1_first;
        c2_last <= c1_last;
        c2_ok <= c1_ok;
        c2_lane <= c1_lane;
        c2_rot <= c1_addr[NBL-1:0];
        c2_res_only <= c1_res_only;
        c2_gb <= c1_gb;
        c2_tlast <= c1_tlast;
        c2_py <= c1_py;
        c2_px <= c1_px;
        inflight <= inflight + 5'(cp_issue && cp_last) - 5'(mac_v);
        if (run) begin
            case (cp_state)
                CP_IDLE: begin
                    if (cp_can_start[cp_h]) begin
                        cp_start(cp_h);
                    end
                end
                CP_RUN: begin
                    if (cp_issue) begin
                        if (cp_last) begin
                            cp_ky <= 8'd0;
                            cp_kx <= 8'd0;
                            cp_ng <= 16'd0;
                            cp_wa <= '0;
                            cp_o0 <= 16'd0;
                            cp_ky0 <= 16'd0;
                            if (cp_px + 8'd1 == cp_nx) begin
                                cp_px <= 8'd0;
                                cp_py <= cp_py + 8'd1;
                                if (cp_py + 8'd1 == cp_ny) begin
                                    // tile done: its half is read for the last time this
                                    // cycle (c0) and next cycle (c1 -> banks), long before
                                    // the prefetcher can refill it; chain the next tile
                                    cp_h <= !cp_h;
                                    cp_state <= CP_IDLE;
                                    if (cp_can_start[!cp_h]) cp_start(!cp_h);
                                end
                            end else cp_px <= cp_px + 8'd1;
                        end else begin
                            cp_wa <= cp_wa + 1'b1;
                            if (L.im2col) begin
                                // next step: lane 0's tap advances by Tn = qa*kc + ra
                                if (32'(cp_o0) + 32'(L.i2c_ra) >= 32'(L.kc)) begin
                                    cp_o0 <= 16'(32'(cp_o0) + 32'(L.i2c_ra) - 32'(L.kc));
                                    cp_ky0 <= cp_ky0 + L.i2c_qa + 16'd1;
                                end else begin
                                    cp_o0 <= cp_o0 + L.i2c_ra;
                                    cp_ky0 <= cp_ky0 + L.i2c_qa;
                                end
                            end else if (cp_ng + 16'd1 == L.N) begin
                                cp_ng <= 16'd0;
                                if (cp_kx + 8'd1 == 8'(L.k)) begin
                                    cp_kx <= 8'd0;
                                    cp_ky <= cp_ky + 8'd1;
                                end else cp_kx <= cp_kx + 8'd1;
                            end else cp_ng <= cp_ng + 16'd1;
                        end
                    end
                end
                default: cp_state <= CP_IDLE;
            endcase
        end


        if (rst) begin
            cp_state <= CP_IDLE;
            inflight <= '0;
            c1_v <= 1'b0;
            c2_v <= 1'b0;
        end
    end
    wire unused_ok = &{1'b0, L, t_chy[0], cp_r[15:PW], cp_c[15:PW], cp_bit};
endmodule
`default_nettype wire
