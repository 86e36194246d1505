`default_nettype none
// dg_loader: the engine's loader (one job: bring the layer's data on chip).
//
// Two agents, each on its own read master (the engine's two AXI read ports, as the HLS
// engine's gmem_fmap / gmem_w bundles: the weights never wait for the patch reads):
//   weights   (wt_* port, m_axi_gmem_w) per m-group: params (bias, mult) and the weights
//             of the group's Tm output channels into the free bank of the ping-pong (bank
//             g%2 once group g-2 is written back), through a credit-managed beat FIFO, up to
//             max(Tm, Tn) bytes per cycle; `bk_ready` tells the compute the bank is loaded;
//   prefetch  (rcmd / rd port, m_axi_gmem, shared with the sequencer and gate unit outside
//             the run) per tile of the sequence (active tiles, then residual-only tiles, per
//             group): geometry, input patch rows and the residual bytes into the free half of
//             the patch / residual buffers (`full` per half; the compute frees a half with
//             `tile_done`).
// It owns the weight, patch and residual buffers; the compute reads them at its c1 stage.
// An im2col layer (formats im2col flag): its weight stream holds kp bytes per output
// channel (the flattened taps, padded to Tn), loaded as S spans of Tn bytes (one weight
// word each) per lane; patch row r is stored at byte AB + r * pitch (pitch = k*C_in mod NB,
// formats.im2col_row_pitch) with patch column 0 at that byte, at any byte alignment, and
// t_lo/t_hi give the loaded (inside the input map) bytes of the rows; see dg_compute.
// A depthwise layer (op OP_DWCONV, weight layout dw: [C][R], R = k*k padded to Tn) is ONE
// loader group (L.G = 1): the params of every active channel j (its id: the out-channel
// list's entry j when gated) into the banks dw_bias/dw_mult[j / Tm][j mod Tm], its row as
// one span of R bytes at w_abs + id * R into lane j mod Tm's weight rows
// (j / Tm) * S + word, Tn bytes per weight word (word w = taps w*Tn ..): the whole layer's
// rows and params are read once per layer and stay on chip; the prefetch then loads one
// patch per tile (the compact or dense input, as for any conv), which the compute runs
// every m-group of (tiles -> m-groups).
module dg_loader
    import dg_pkg::*;
(
    input  wire                         clk,
    input  wire                         rst,
    input  dg_layer_t                   L,
    input  wire                         run,
    input  wire                         run_init,
    // the sequencer's work lists and zero-halo tables (distributed RAM there): asynchronous
    // read ports, the address out and the entry back in the same cycle
    output logic [I_MAX_TILES-1:0]      tl_ra,         // tile list entry
    input  wire [15:0]                  tl_q,
    output logic [I_MAX_TILES-1:0]      rl_ra,         // residual-only tile list entry
    input  wire [15:0]                  rl_q,
    input  wire [1:0]                   ch_we,         // channel-list entry write (dg_sequencer):
    input  wire [15:0]                  ch_idx,        //   [0] out-channel list, [1] in-channel list
    input  wire [15:0]                  ch_val,
    output logic [I_MAX_HEIGHT-1:0]     row_ra,        // zero-halo row table entry (input row)
    input  wire [15:0]                  row_tb_q,      //   tile row * grid_w
    input  wire                         row_tv_q,      //   inside the grid
    output logic [I_MAX_WIDTH-1:0]      col_ra,        // zero-halo column table entry (input column)
    input  wire [7:0]                   col_t_q,       //   tile column
    input  wire                         col_tv_q,      //   inside the grid
    // read master (in the run: the prefetcher's patch rows and residual bytes)
    output logic                        rcmd_valid,
    output logic [63:0]                 rcmd_addr,
    output logic [23:0]                 rcmd_beats,
    input  wire                         rcmd_ready,
    input  wire [DG_AXI_DATA_BITS-1:0]  rd_data,
    input  wire                         rd_valid,
    input  wire                         rd_last,
    output logic                        rd_ready,
    // weight read master (params and weight spans; the loader is its only user)
    output logic                        wt_rcmd_valid,
    output logic [63:0]                 wt_rcmd_addr,
    output logic [23:0]                 wt_rcmd_beats,
    input  wire                         wt_rcmd_ready,
    input  wire [DG_AXI_DATA_BITS-1:0]  wt_rd_data,
    input  wire                         wt_rd_valid,
    output wire                         wt_rd_ready,
    // banks (per m-group)
    output logic [15:0]                 bk_m0 [2],     // first output channel slot of the group
    output logic [7:0]                  bk_mg [2],     // output channels of the group
    output logic [31:0]                 bk_bias [2][DG_TM],
    output logic [31:0]                 bk_mult [2][DG_TM],
    input  wire                         dw_re,         // depthwise params: read row dw_ra
    input  wire [I_SG-1:0]              dw_ra,         //   (the write-back's next m-group)
    output logic [31:0]                 dw_bias_q [DG_TM],   // registered row: params of dw_ra
    output logic [31:0]                 dw_mult_q [DG_TM],
    input  wire [15:0]                  wb_gdone,      // groups written back (their bank is free)
    output logic                        ld_busy,
    // tile halves (per half: the tile record and the patch row / column tables)
    output logic [1:0]                  full,
    input  wire                         tile_done,     // the compute is done with half cp_h
    input  wire                         cp_h,
    output logic [15:0]                 t_idx [2],
    output logic [15:0]                 t_o0y [2], t_o0x [2], t_cy0 [2], t_cx0 [2],
    output logic [7:0]                  t_oh [2], t_ow [2], t_chy [2], t_chw [2],
    output logic                        t_res_only [2],
    output logic [15:0]                 t_g [2],       // m-group of the tile
    output logic                        t_glast [2],   // last tile of its group
    output logic [1:0]                  t_bk_ok,       // bk_ready[t_g[h][0]] && bk_grp[t_g[h][0]] == t_g[h]
    output logic [IAW-1:0]              rowbase [2][PMAX],
    output logic                        row_ok [2][PMAX],
    output logic [15:0]                 row_tb [2][PMAX],
    output logic                        row_tv [2][PMAX],
    output logic [IAW-1:0]              colbyte [2][PMAX],
    output logic                        col_ok [2][PMAX],
    output logic [7:0]                  col_t [2][PMAX],
    output logic                        col_tv [2][PMAX],
    output logic [15:0]                 t_lo [2], t_hi [2],   // im2col: loaded bytes [lo, hi) of a patch row
    output wire  [31:0]                 t_dwrb [2],    // depthwise: bytes per dw bank row (ceil(pw/k) * dw_cst)
    output logic [15:0]                 dw_cst,        // depthwise: a pixel's bytes in its dw bank (C, padded)
    output wire                         pf_idle,
    // buffer reads (compute stage c1; data at c2)
    input  wire [IAW-1:0]               c1_addr,
    input  wire [IAW-1:0]               c1_badd [NB],  // im2col: extra row of each bank
    input  wire                         c1_gb,
    input  wire [WAW-1:0]               c1_wa,
    input  wire [RAW-1:0]               c1_rbaddr,
    output logic [DG_TM*DG_TN*8-1:0]    wb_q,
    output logic [7:0]                  ib_q [NB],
    input  wire [DW_AW-1:0]             c1_dwlin [DW_NBK],   // depthwise: lane 0's byte per dw bank
    output logic [7:0]                  dw_q [DW_NBK][DW_NBW],
    output logic [DG_TM*8-1:0]          rb_q
);
    localparam int PEND_DEPTH = 32;
    // iy * in_row_bytes, sign-extended to 64 bits, for |iy| < 2^19 (a patch row's first input
    // row: cy0 * stride - pad with cy0 < 2^16, stride <= 3)
    function automatic logic signed [52:0] ld_row_prod(input logic signed [19:0] iy, input logic [31:0] rb);
        logic signed [32:0] b;
        b = {1'b0, rb};
        return 53'(iy) * 53'(b);
    endfunction
    wire L_no_mac = L.n_in == 16'd0;   // no active input channel: acc = 0 (+ bias), no patch, no weights
    // a depthwise layer, only with the depthwise hardware (DG_DEPTHWISE = 0: a constant 0, so
    // every depthwise path below is pruned; module-by-module synthesis sees L as a port)
    wire l_dw = DG_DEPTHWISE && L.dw;
    logic [15:0] ld_g;             // next group to load
    wire         ld_b = ld_g[0];
    logic [1:0]  bk_lanes;         // bank lane ids valid
    logic [15:0] bk_grp [2];       // group held by the bank
    logic [1:0]  bk_ready;         // bank params (and weights) loaded (the compute: t_bk_ok)
    logic [15:0] bk_ch [2][DG_TM];
    // the loading group's lanes and channels (bk_mg / bk_ch of bank ld_b, written with them at
    // ld_start): the span issue reads these, no bank select (ld_b) in its path
    logic [7:0]  ld_mg;
    logic [15:0] ld_chs [DG_TM];

    // ------------------------------------------------------------------ channel lists
    // Block RAMs written by the sequencer (one entry per cycle, before the run), each read
    // through a registered port whose address is the NEXT value of the counter it serves,
    // so its output is the entry of the counter's current value in every cycle:
    //   oc_mem  the out-channel list in rows of Tm entries (row g = m-group g's channels):
    //           row ld_g_d, read whole at a group start (bk_ch);
    //   ic_mem  the in-channel list (a depthwise layer: its out-channel list, its only list),
    //           two copies: port A at the span index sp_i_d (ic layout: the in-channel of
    //           span row i; depthwise: the channel of span i), port B at the compact
    //           merge's sc_nptr_d (oc layout, gated input: the next listed in-channel).
    localparam int CL_D = (DG_MAX_IN_CHANNELS > DG_MAX_OUT_CHANNELS) ? DG_MAX_IN_CHANNELS : DG_MAX_OUT_CHANNELS;
    localparam int CL_AW = (CL_D > 1) ? $clog2(CL_D) : 1;
    localparam int OC_AW = (SG_MAX > 1) ? $clog2(SG_MAX) : 1;
    logic [15:0] ld_g_d, sp_i_d, sc_nptr_d;   // next values of ld_g, sp_i, sc_nptr (always_comb below)
    logic [DG_TM*16-1:0] oc_q;     // out-channel list row ld_g
    logic [15:0] ic_qa, ic_qb;     // in-channel list entries sp_i, sc_nptr
    wire ic_we = ch_we[1] || (ch_we[0] && l_dw);
    begin : g_oclist
        logic [DG_TM*16-1:0] mem [SG_MAX];
        always_ff @(posedge clk) begin
            for (int e = 0; e < DG_TM; e++)
                if (ch_we[0] && 32'(ch_idx) % DG_TM == e) mem[OC_AW'(32'(ch_idx) / DG_TM)][e*16 +: 16] <= ch_val;
            oc_q <= mem[OC_AW'(ld_g_d)];
        end
    end
    begin : g_iclist
        logic [15:0] mem_a [CL_D];
        logic [15:0] mem_b [CL_D];
        always_ff @(posedge clk) begin
            if (ic_we) begin
                mem_a[CL_AW'(ch_idx)] <= ch_val;
                mem_b[CL_AW'(ch_idx)] <= ch_val;
            end
            ic_qa <= mem_a[CL_AW'(sp_i_d)];
            ic_qb <= mem_b[CL_AW'(sc_nptr_d)];
        end
    end

    // ------------------------------------------------------------------ span loader (params, weights)
    // spans: (byte address, bytes) read one byte per cycle into the params / weight buffer
    typedef enum logic [1:0] {SP_PARAM, SP_WOC, SP_WIC} span_kind_t;
    logic [1:0]  sp_phase;         // issue side: 0 params, 1 weights, 2 done
    logic [15:0] sp_i, sp_j;       // issue counters (lane / in-channel, kernel position)
    // the span's weight row, counted (no address products): ic layout j * N + i / Tn, oc
    // layout j * N (+ the byte's word, consume side), im2col j, depthwise (i / Tm) * S
    logic [15:0] sp_row, sp_dwrow, sp_rstep;
    // FIFO of issued spans: {last chunk, kind, lane or n, weight row, off, bytes}: `weight row`
    // = the span's first weight-buffer row in its bank (counted at issue, sp_row), `bytes` =
    // the chunk's bytes (a span is one chunk but for the oc layout's in_c-byte spans, read
    // in chunks of at most SPAN_CHUNK bytes, below; the consume side's sc_b runs on over
    // the chunks of a span)
    localparam int SPF_W = 1 + 2 + 16 + 16 + 8 + 16;
    logic [SPF_W-1:0] spf_in;
    logic spf_push;
    wire spf_in_ready, spf_valid;
    wire [SPF_W-1:0] spf_out;
    logic spf_pop;
    wire [5:0] spf_count;
    // (the span and pending FIFOs' heads are registers: the consume step and the receive
    // side's row start begin at flip-flops, not at a distributed-RAM read)
    dg_fifo #(.WIDTH(SPF_W), .DEPTH(32), .HEAD_REG(1)) span_fifo (
        .clk(clk), .rst(rst), .in_data(spf_in), .in_valid(spf_push), .in_ready(spf_in_ready),
        .out_data(spf_out), .out_valid(spf_valid), .out_ready(spf_pop), .count(spf_count));
    // loader beat FIFO (credit-managed)
    localparam int LDF_DEPTH = 64;
    localparam int LFW = $clog2(LDF_DEPTH) + 1;
    wire ldf_in_ready, ldf_valid;
    wire [DG_AXI_DATA_BITS-1:0] ldf_data;
    logic ldf_pop;
    wire [$clog2(LDF_DEPTH):0] ldf_count;
    // loader FIFO credit: LDF_DEPTH - (beats in the FIFO) - (beats requested, not yet in the
    // FIFO), kept as a register (the issue check compares with it: no subtract in that path)
    logic [LFW-1:0] ldf_free;     // (0 .. LDF_DEPTH)
    // An oc-layout weight span (one lane, one kernel position: in_c bytes) is read in chunks
    // of at most SPAN_CHUNK bytes (sp_c: the chunk's first byte in the span), so a span's
    // beats never exceed the credit FIFO (in_c up to 2048 on a 128-bit bus is 129 beats:
    // one read would wait for more credit than LDF_DEPTH forever). The consume side keeps
    // the span's byte index (sc_b) and compact-input merge (sc_nptr) across its chunks.
    localparam int SPAN_CHUNK = (LDF_DEPTH / 2) * AB;
    logic [15:0] sp_c;
    logic [15:0] sp_left;          // in_c - sp_c (registered with sp_c: no subtract at issue)
    // (every beat of the weight port is the loader's: the FIFO takes it as the port's R ready)
    dg_fifo #(.WIDTH(DG_AXI_DATA_BITS), .DEPTH(LDF_DEPTH)) ld_fifo (
        .clk(clk), .rst(rst), .in_data(wt_rd_data), .in_valid(wt_rd_valid), .in_ready(ldf_in_ready),
        .out_data(ldf_data), .out_valid(ldf_valid), .out_ready(ldf_pop), .count(ldf_count));
    assign wt_rd_ready = ldf_in_ready;
    // loader consume step (combinational, below): ld_k bytes from beat position pos
    logic [ABL:0] pos;             // byte position in the loader beat
    logic last_byte;
    localparam int KMAX = (DG_TM > DG_TN) ? DG_TM : DG_TN;   // loader bytes per cycle, at most
    localparam int KW = (KMAX > 1) ? $clog2(KMAX) : 1;
    logic [7:0] ld_k;
    logic [7:0] ld_byte0;          // the byte at pos (params)
    logic [7:0] ld_rot [KMAX];     // the beat rotated for the weight write (wb_rot)
    logic [15:0] ld_n;             // oc layout: the in-channel slot index of the step's first byte
    wire ld_consume = ld_busy && spf_valid && ldf_valid;
    logic [15:0] sc_b;             // byte index within the span
    logic [ABL:0] sc_pos;          // byte position within the beat
    logic sc_started;
    logic [15:0] sc_left;          // bytes of the chunk after this step's (when sc_started)
    logic [15:0] ld_left;          //   (the consume step's: left_span - k)
    // the layer's full oc layout (!in_ch_gated || dw: kk = Tn - sc_b mod Tn, ld_n = sc_b),
    // registered: no layer field in the consume step's path
    logic sc_wocf;
    always_ff @(posedge clk) sc_wocf <= !L.in_ch_gated || l_dw;
    logic [15:0] sc_nptr;          // oc layout: next active in-channel index

    // weight buffer: one block RAM per lane, a row = the lane's Tn weight bytes, one byte
    // enable per byte (both ping-pong banks: rows [0, WDEPTH) and [WDEPTH, 2*WDEPTH)).
    // A consume step writes one row address in every lane (wb_waddr) and its bytes are a
    // run of the beat: the write is registered as a lane mask, a slot mask and the beat
    // rotated once (wb_rot); byte (lane m, slot t) takes wb_rot[(m + t) mod KMAX], so the
    // step's run (ic layout: lanes l0.., one slot; oc layout: one lane, slots t0..) sits at
    // consecutive indices from (l0 + t0) mod KMAX, distinct as the run wraps neither the lanes
    // nor the slots. Per (lane, slot) byte only an AND of the masks: the data is wiring (no
    // per-byte select by layout, no scatter over the beat positions).
    logic [WAW:0] wb_waddr;
    logic [DG_TM-1:0] wb_lane;           // lanes written
    logic [DG_TN-1:0] wb_slot;           // in-channel slots written (of each written lane)
    // a consume step's byte d (from its first) is written iff d < left_span and pos + d < AB
    // (the step's registers once started, else the span FIFO's head); the kk bound is the caller's
    // (d < KMAX: a lane or slot index's distance from the step's first, KW bits)
    function automatic logic sc_in(input logic [KW-1:0] d);
        return sc_started ? 32'(sc_left) > 32'(d) && 32'(sc_pos) + 32'(d) < AB
                          : 32'(spf_out[15:0]) > 32'(d) && 32'((ABL+1)'(spf_out[23:16])) + 32'(d) < AB;
    endfunction
`ifndef SYNTHESIS
    logic [DG_TM-1:0] wb_lane_ref;       // the enables by k = min(kk, left_span, left_beat)
    logic [DG_TN-1:0] wb_slot_ref;
`endif
    logic [7:0] wb_rot [KMAX];
    logic [WAW:0] wb_raddr;
    for (genvar m = 0; m < DG_TM; m++) begin : g_wbank
        logic [DG_TN*8-1:0] mem [2*WDEPTH];
        always_ff @(posedge clk) begin
            for (int t = 0; t < DG_TN; t++)
                if (wb_lane[m] && wb_slot[t]) mem[wb_waddr][t*8 +: 8] <= wb_rot[(m + t) % KMAX];
            wb_q[m * DG_TN * 8 +: DG_TN * 8] <= mem[wb_raddr];
        end
    end


    // ------------------------------------------------------------------ prefetch
    typedef enum logic [3:0] {PF_IDLE, PF_ROW, PF_ROW2, PF_GEO, PF_GEO2, PF_GEO3, PF_GEO4, PF_ROWS, PF_RES,
                              PF_WAIT} pf_state_t;
    pf_state_t pf_state;
    logic [15:0] pf_i;             // next tile-sequence entry to prefetch
    // pf_i + 1 == n_seq as a register (PF_WAIT's wrap test; pf_i and L are unchanged since
    // PF_IDLE, several states before PF_WAIT)
    logic pf_ilast;
    always_ff @(posedge clk) pf_ilast <= pf_i + 16'd1 == L.n_seq;
    logic [15:0] pf_g;             // its m-group
    logic pf_h;                    // half being filled
    logic [7:0] pf_ty, pf_tx;
    // tile index -> (row, col) without a divider or multiplier in the loop: q * grid_w per
    // row q (registered, the layer's constants), compares and remainders (PF_ROW), the row as
    // the count of rows passed and the col as that row's remainder (PF_ROW2)
    logic [15:0] pf_idx;
    logic [15:0] gw_q [DG_MAX_GRID];
    logic [DG_MAX_GRID-1:0] pf_ge;     // idx >= q * grid_w (bit 0: always)
    logic [15:0] pf_rem [DG_MAX_GRID]; // idx - q * grid_w
    // per half tile record
    // prefetch working values
    logic signed [31:0] pf_iy0, pf_ix0;
    logic [7:0] pf_ph, pf_pw, pf_r, pf_c;
    logic [15:0] pf_ixv0;
    logic [31:0] pf_row_bytes;
    logic signed [17:0] pf_vw;     // the tile's loaded patch columns ixv1 - ixv0 (PF_GEO3; checked to fit)
    logic [IAW-1:0] pf_bufptr;
    logic [IAW-1:0] pf_vb;         // im2col: buffer byte of patch column 0 of row pf_r
    logic [15:0] pf_lo;            // im2col: byte of the first loaded column in a patch row
    logic [7:0] pf_py, pf_px;
    logic [7:0] pf_jl;
    logic [DG_TM-1:0] pf_jge;      // lanes j >= pf_jl (a thermometer, written with pf_jl)
    logic [7:0] pf_dwk;            // depthwise: pf_r mod k
    logic [DW_AW-1:0] pf_dwb;      // depthwise: row pf_r's first lin (half + (pf_r div k) * t_dwrb)
    logic [63:0] pf_pixaddr;
    // pending read commands: {type, dw row-start state, dw row base, dw row phase, dw row
    // offset, half, data}: patch {base} / residual {pixel, jl, jh, off} (for the depthwise
    // patch banks: the patch row's first lin (its half's + (r div k) * t_dwrb), r mod k, and
    // its first byte in its first beat; and the receive's state at the row's first byte, formed
    // at the push from registers so that the row start begins at the FIFO's head register:
    // C + roff, base - roff, base + dw_cst)
    localparam int PE_RB = 49;                      // dw row base
    localparam int PE_REM = PE_RB + DW_AW;          // C + roff (17 bits)
    localparam int PE_CUR = PE_REM + 17;            // base - roff
    localparam int PE_PBH = PE_CUR + DW_AW;         // base + dw_cst
    localparam int PEND_WF = PE_PBH + DW_AW + 1;
    // (without the depthwise hardware the entry is its low 33 bits and the type: no dw fields)
    localparam int PEND_W = DG_DEPTHWISE ? PEND_WF : 34;
    logic [PEND_WF-1:0] pend_full;                  // the entry with every field
    logic [PEND_W-1:0] pend_in;
    logic pend_push;
    wire pend_in_ready, pend_valid;
    wire [PEND_W-1:0] pend_out;
    logic pend_pop;
    wire [$clog2(PEND_DEPTH):0] pend_count;
    dg_fifo #(.WIDTH(PEND_W), .DEPTH(PEND_DEPTH), .HEAD_REG(1)) pend_fifo (
        .clk(clk), .rst(rst), .in_data(pend_in), .in_valid(pend_push), .in_ready(pend_in_ready),
        .out_data(pend_out), .out_valid(pend_valid), .out_ready(pend_pop), .count(pend_count));
    assign pend_in = {pend_full[PEND_WF-1], (PEND_W-1)'(pend_full)};
    logic [15:0] pr_beat;          // beat index within the current patch row
    logic pr_first;                // pr_beat == 0 (a register, counted with it)

    // depthwise patch buffer (op OP_DWCONV): DW_NBK banks by (patch row mod k, patch column
    // mod k); bank (r mod k, c mod k) holds its pixels' stored channels as one byte stream,
    // pixel (r, c) channel ch at byte lin = (r div k) * t_dwrb + (c div k) * dw_cst + ch (+ the
    // half's DW_HALF), over DW_NBW byte columns (byte lin in column lin mod DW_NBW, row
    // lin div DW_NBW). A patch row's beat (AB bytes, in row order) puts, per bank, a run of
    // consecutive bytes (pixel c's channels, then pixel c + k's), so no two of its bytes share
    // a column; a read of Tm lanes (Tm consecutive channels) neither.
    // The receive side has no chain over the beat's bytes. Its state at a beat's byte 0: the
    // current pixel's column phase (dw_ph), the bytes from byte 0 to that pixel's end (dw_rem;
    // a row's first beat counts its roff bytes before the row as the first pixel's), the lin
    // byte 0 would have in it (dw_cur), and per phase j the lin of the first byte of the
    // first pixel of phase j at or after the current one (dw_pb). Byte l < rem is in the
    // current pixel (lin = cur + l); byte l >= rem is u = l - rem bytes past it: pixel
    // m = 1 + u div C, phase (ph + m) mod k, lin = pb[phase] + (m div k) * C + u mod C. The
    // layer's table dt_* (registered from C) holds these per u < AB, and the state a beat
    // moves on to (AB bytes on: u = AB - rem). Stage A registers each byte's phase and
    // column and per phase the lin of its first byte in the beat (its bytes are increasing
    // lins within DW_NBW of it, pixel c's channels then pixel c + k's); stage B routes the bytes to the columns
    // (at most one per column: a one-hot OR), the row of a column from its phase's first lin.
    // (pad <= k div 2 < k: the tile's first loaded column dw_c0 is its first pixel's phase.)
    // Padded pixel stride (DW_PADDED: when the config's banks hold every patch the fit rule
    // admits so padded; ultra96): a pixel takes dw_cst = C rounded up to a multiple of g, the
    // largest power of two <= DW_NBW with that <= k * C, instead of C bytes, so lane 0's byte
    // of a read (half + (r div k) * t_dwrb + (c div k) * dw_cst + m0) is a multiple of
    // min(g, Tm) mod DW_NBW and the compute's per-slot rotation is a narrow pick per lane
    // (none at C >= DW_NBW / 2 when Tm = DW_NBW). dw_cst <= k * C keeps a beat's bytes of one
    // phase within DW_NBW lins: (n - 1) * dw_cst + b - a <= (n - 1) * k * C + b - a <= AB for
    // its n pixels (channels a.. of the first, ..b of the last), so stage B is unchanged.
    // (dw_pad_g, DW_PADDED: dg_pkg, shared with dg_compute.)
    if (DG_DEPTHWISE) begin : g_dwcst
        always_ff @(posedge clk) begin
            logic [17:0] r;
            logic [15:0] best;
            best = 16'(L.cin_st);
            if (DW_PADDED)
                for (int q = 2; q <= DW_NBW; q = q * 2) begin
                    r = (18'(L.cin_st) + 18'(q - 1)) & ~18'(q - 1);
                    if (r <= 18'(L.cin_st) * 18'(DW_K)) best = 16'(r);
                end
            dw_cst <= best;
        end
    end else begin : g_nodwcst
        assign dw_cst = '0;
    end
    logic [31:0] dw_rb;            // the tile's ceil(pw / k) * dw_cst (PF_GEO4)
    logic [31:0] t_dwrb_r [2];     // t_dwrb (a constant 0 without the depthwise hardware)
    for (genvar h = 0; h < 2; h++) begin : g_dwrb
        assign t_dwrb[h] = DG_DEPTHWISE ? t_dwrb_r[h] : 32'd0;
    end
    logic [7:0]  dw_c0;            // the tile's first loaded patch column (ixv0 - ix0)
    // Everything depthwise below (the table, the receive's stage A and B, the dw banks) only
    // with the depthwise hardware (DG_DEPTHWISE; else dw_q reads 0 and nothing is left)
    logic dwa_v;                          // stage A holds a beat (0 without the hardware)
    if (DG_DEPTHWISE) begin : g_dw
        localparam int PHW = $clog2(DW_K);
        logic [ABL:0] dt_r [AB];              // u mod C
        logic [PHW-1:0] dt_po [AB];           // (1 + u div C) mod k: phase offset of byte u's pixel
        logic [DW_AW-1:0] dt_off [AB];        // ((1 + u div C) div k) * dw_cst + u mod C
        logic [16:0] dt_rem [AB];             // C - u mod C
        // dt_n: the pixels of phase distance d in [0, 1 + u div C), ceil((1 + u div C - d) / k)
        // <= ceil(AB / k), formed with u div C from constants (not a divide of it); the beat-end
        // update advances a phase's lin by dt_kc[dt_n] (a narrow pick of k * C where it is used,
        // not a table of AB x k picks)
        localparam int DTN_MAX = (AB + DW_K - 1) / DW_K;
        localparam int DTN_W = $clog2(DTN_MAX + 1);
        logic [DTN_W-1:0] dt_n [AB][DW_K];
        localparam int DT_KW = DTN_W;
        logic [DW_AW-1:0] dt_kc [2 ** DTN_W]; // k * dw_cst (lins), k <= DTN_MAX
        logic [PHW-1:0] dw_ph;
        logic [16:0] dw_rem;
        logic [DW_AW-1:0] dw_cur;
        logic [DW_AW-1:0] dw_pb [DW_K];
        // stage A (a beat's bytes), stage B writes dw_wee/dw_weo/dw_wae/dw_wao/dw_wdata
        logic dwa_half;
        localparam int PHN = $clog2(DW_K + 1);
        logic [PHW-1:0] dwa_rk;               // the row's phase (r mod k)
        logic [DW_K-1:0] dwa_rkv;             // dwa_v && dwa_rk == r (one-hot or 0)
        logic [PHN-1:0] dwa_ph [AB];          // byte's column phase; DW_K: not in the row
        logic [DW_NBWL-1:0] dwa_col [AB];     // its column (lin mod DW_NBW)
        logic [7:0] dwa_byte [AB];
        logic [DW_AW-1:0] dwa_ls [DW_K];      // per phase: the lin of its first byte in the beat
        // The banks: each as two memories of DW_NBW byte columns, the even and the odd rows
        // (rows R and R + 1 of a read or a write are in different ones: one address each, a byte
        // enable per column): 2 * DW_NBK memories of DW_DEPTH / 2 rows x DW_NBW bytes (ultra96:
        // 18 x 512 x 128 bits, 2 BRAM36 each) rather than DW_NBK * DW_NBW byte memories.
        localparam int DW_RW = DW_RAW + 1;   // bank row width ($clog2(DW_DEPTH))
        logic [DW_NBW-1:0] dw_wee [DW_NBK];  // column write enables, even-row memory
        logic [DW_NBW-1:0] dw_weo [DW_NBK];  //   and odd-row memory
        logic [DW_NBW-1:0] dwb_ene [DW_K];   // stage B: per column phase, the column enables
        logic [DW_NBW-1:0] dwb_eno [DW_K];   //   (even / odd memory) of a beat's bytes
        logic [DW_K-1:0] dwb_rkv;            // stage B: dwa_rkv a cycle on (the row phase)
    `ifndef SYNTHESIS
        logic [DW_NBW-1:0] dw_wee_ref [DW_NBK];   // the enables as registered per bank before
        logic [DW_NBW-1:0] dw_weo_ref [DW_NBK];
    `endif
        logic [DW_RAW-1:0] dw_wae [DW_NBK];  // their write rows
        logic [DW_RAW-1:0] dw_wao [DW_NBK];
        logic [7:0] dw_wdata [DW_K][DW_NBW]; // per column phase (its k banks see the same bytes)
        logic [DW_RAW-1:0] dw_rae [DW_NBK];
        logic [DW_RAW-1:0] dw_rao [DW_NBK];
        logic [DW_NBW-1:0] dw_rodd [DW_NBK]; // column w's row R or R + 1 is odd (registered)
        always_comb begin
            // bank b: lane 0's byte at row R = lin div DW_NBW; column w reads R + 1 if w < lin mod
            // DW_NBW, else R: the odd memory's row R div 2, the even one's (R + 1) div 2
            // (DW_PADDED: the lanes a read feeds are in row R alone, see dg_compute: both
            // memories read at R div 2, the one of R's parity is taken)
            for (int b = 0; b < DW_NBK; b++) begin
                logic [DW_RW-1:0] r0;
                r0 = DW_RW'(c1_dwlin[b] >> DW_NBWL);
                dw_rao[b] = DW_RAW'(r0 >> 1);
                dw_rae[b] = DW_RAW'(r0 >> 1) + DW_RAW'(r0[0] && !DW_PADDED);
            end
        end
        for (genvar b = 0; b < DW_NBK; b++) begin : g_dwbank
            logic [8*DW_NBW-1:0] me [DW_DEPTH / 2];
            logic [8*DW_NBW-1:0] mo [DW_DEPTH / 2];
            logic [8*DW_NBW-1:0] qe, qo;
            always_ff @(posedge clk) begin
                for (int w = 0; w < DW_NBW; w++) begin
                    if (dw_wee[b][w]) me[dw_wae[b]][w*8 +: 8] <= dw_wdata[b % DW_K][w];
                    if (dw_weo[b][w]) mo[dw_wao[b]][w*8 +: 8] <= dw_wdata[b % DW_K][w];
                end
                qe <= me[dw_rae[b]];
                qo <= mo[dw_rao[b]];
                for (int w = 0; w < DW_NBW; w++)
                    dw_rodd[b][w] <= c1_dwlin[b][DW_NBWL] ^ (!DW_PADDED && DW_NBWL'(w) < c1_dwlin[b][DW_NBWL-1:0]);
            end
            always_comb
                for (int w = 0; w < DW_NBW; w++)
                    dw_q[b][w] = dw_rodd[b][w] ? qo[w*8 +: 8] : qe[w*8 +: 8];
        end

        // the layer's table (C = L.cin_st), written two entries a cycle by two counter chains
        // (even u and odd u, each stepping u by 2): u mod C, the pixel count m = 1 + u div C as
        // m mod k and (m div k) * dw_cst, and per phase distance d the pixels ceil((m - d) / k)
        // (one more when m mod k becomes d + 1 mod k): no divide, no per-entry arithmetic on C.
        // Refilled after reset and a cycle after C changes (dw_cst and C's flags settled), then
        // AB / 2 cycles: L is constant in the run, and a layer's first patch beat returns later
        // (checked below)
        localparam int DT_PW = ABL - 1;       // pair index width
        logic [15:0] dt_cq;                   // C of the fill
        logic dt_c1;                          // C == 1
        logic [ABL:0] dt_cm1, dt_cm2;         // low bits of C - 1, C - 2 (u mod C < AB)
        logic dt_cz1, dt_cz2;                 //   and their high bits zero: the wrap compares
        logic dt_cnz;                         // C != 0
        logic dt_ch;                          // C changed (the restart, a cycle later: C's flags settled)
        logic [DT_PW:0] dt_u;                 // pair written next (AB / 2: the table is full)
        logic [ABL:0] dt_sr [2];              // per chain: u mod C
        logic [PHW-1:0] dt_sp [2];            //   m mod k
        logic [DW_AW-1:0] dt_so [2];          //   (m div k) * dw_cst
        logic [DTN_W-1:0] dt_sn [2][DW_K];    //   ceil((m - d) / k)
        function automatic logic [PHW-1:0] dt_inc(input logic [PHW-1:0] p);
            return (32'(p) == DW_K - 1) ? '0 : p + 1'b1;
        endfunction
        always_ff @(posedge clk) begin
            for (int k = 0; k < 2 ** DTN_W; k++)
                dt_kc[k] <= DW_AW'(32'(k) * 32'(dw_cst));
            dt_cq <= 16'(L.cin_st);
            dt_c1 <= L.cin_st == 1;
            dt_cm1 <= (ABL+1)'(17'(L.cin_st) - 17'd1);
            dt_cm2 <= (ABL+1)'(17'(L.cin_st) - 17'd2);
            dt_cz1 <= (17'(L.cin_st) - 17'd1) >> (ABL + 1) == '0;
            dt_cz2 <= (17'(L.cin_st) - 17'd2) >> (ABL + 1) == '0;
            dt_cnz <= L.cin_st != 0;
            dt_ch <= 16'(L.cin_st) != dt_cq;
            if (rst || dt_ch) begin
                // u = 0: m = 1; u = 1: m = 2 if C = 1, else m = 1, u mod C = 1 (C = 0: 0)
                dt_u <= '0;
                dt_sr[0] <= '0;
                dt_sp[0] <= PHW'(1 % DW_K);
                dt_so[0] <= DW_AW'((1 / DW_K) * 32'(dw_cst));
                for (int d = 0; d < DW_K; d++) dt_sn[0][d] <= DTN_W'((d < 1) ? (1 - d + DW_K - 1) / DW_K : 0);
                if (dt_c1) begin
                    dt_sr[1] <= '0;
                    dt_sp[1] <= PHW'(2 % DW_K);
                    dt_so[1] <= DW_AW'((2 / DW_K) * 32'(dw_cst));
                    for (int d = 0; d < DW_K; d++) dt_sn[1][d] <= DTN_W'((d < 2) ? (2 - d + DW_K - 1) / DW_K : 0);
                end else begin
                    dt_sr[1] <= (ABL+1)'(dt_cnz);
                    dt_sp[1] <= PHW'(1 % DW_K);
                    dt_so[1] <= DW_AW'((1 / DW_K) * 32'(dw_cst));
                    for (int d = 0; d < DW_K; d++) dt_sn[1][d] <= DTN_W'((d < 1) ? (1 - d + DW_K - 1) / DW_K : 0);
                end
            end else if (!dt_u[DT_PW]) begin
                for (int i = 0; i < AB / 2; i++)
                    if (dt_u[DT_PW-1:0] == DT_PW'(i))
                        for (int c = 0; c < 2; c++) begin
                            dt_r[2 * i + c] <= dt_sr[c];
                            dt_po[2 * i + c] <= dt_sp[c];
                            dt_off[2 * i + c] <= dt_so[c] + DW_AW'(dt_sr[c]);
                            dt_rem[2 * i + c] <= 17'(dt_cq) - 17'(dt_sr[c]);
                            dt_n[2 * i + c] <= dt_sn[c];
                        end
                dt_u <= dt_u + 1'b1;
                // each chain two bytes on: u mod C wraps at C after the first (w0) and / or the
                // second (w1) byte (C = 0: u div C = u mod C = 0 throughout)
                if (dt_cnz)
                    for (int c = 0; c < 2; c++) begin
                        logic w0, w1, cr;
                        logic [PHW-1:0] pa, pb2;
                        w0 = dt_cz1 && dt_sr[c] == dt_cm1;             // (u mod C) + 1 == C
                        w1 = w0 ? dt_c1 : dt_cz2 && dt_sr[c] == dt_cm2;
                        dt_sr[c] <= w0 ? (ABL+1)'(!dt_c1) : w1 ? '0 : dt_sr[c] + (ABL+1)'(2);
                        pa = w0 ? dt_inc(dt_sp[c]) : dt_sp[c];
                        pb2 = w1 ? dt_inc(pa) : pa;
                        dt_sp[c] <= pb2;
                        cr = (w0 && 32'(dt_sp[c]) == DW_K - 1) || (w1 && 32'(pa) == DW_K - 1);
                        if (cr) dt_so[c] <= dt_so[c] + DW_AW'(dw_cst);
                        for (int d = 0; d < DW_K; d++)
                            if ((w0 && 32'(dt_inc(dt_sp[c])) == (d + 1) % DW_K) || (w1 && 32'(dt_inc(pa)) == (d + 1) % DW_K))
                                dt_sn[c][d] <= dt_sn[c][d] + 1'b1;
                    end
            end
        end
    `ifndef SYNTHESIS
        // the table against the formulas (u div C, u mod C by division) at every depthwise patch
        // beat's stage A: the fill must be done for the current C
        always_ff @(posedge clk) begin
            if (run && dw_cst != 16'(DW_PADDED ? ((32'(L.cin_st) + dw_pad_g(32'(L.cin_st)) - 1) / dw_pad_g(32'(L.cin_st)))
                                                 * dw_pad_g(32'(L.cin_st)) : 32'(L.cin_st)))
                $error("dg_loader: dw_cst %0d stale or wrong (C = %0d)", dw_cst, L.cin_st);
            if (dwa_v && L.cin_st != 0)
                for (int u = 0; u < AB; u++) begin
                    logic [31:0] m, rr;
                    logic bad;
                    m = 32'(u) / 32'(L.cin_st) + 1;
                    rr = 32'(u) % 32'(L.cin_st);
                    bad = !dt_u[DT_PW] || dt_cq != 16'(L.cin_st)
                          || 32'(dt_r[u]) != rr || 32'(dt_po[u]) != m % DW_K
                          || 32'(dt_off[u]) != 32'(DW_AW'((m / DW_K) * 32'(dw_cst) + rr))
                          || 32'(dt_rem[u]) != 32'(L.cin_st) - rr;
                    for (int d = 0; d < DW_K; d++)
                        if (32'(dt_kc[DT_KW'(dt_n[u][d])]) != ((m > 32'(d)) ? 32'(DW_AW'(((m - 32'(d) + DW_K - 1) / DW_K) * 32'(dw_cst))) : 32'd0))
                            bad = 1'b1;
                    if (bad) $error("dg_loader: depthwise table entry %0d stale or wrong (C = %0d)", u, L.cin_st);
                end
        end
    `endif
        // stage B: column w of phase p takes the beat's byte of phase p in column w (at most one);
        // its row: the phase's first lin's (R), R + 1 below that lin's column; the even or odd
        // memory by the row's parity. Written in the dw bank of the row's phase (r mod k, p).
        always_ff @(posedge clk) begin
            for (int p = 0; p < DW_K; p++) begin
                logic [DW_RW-1:0] r0;
                r0 = DW_RW'(dwa_ls[p] >> DW_NBWL);
                for (int w = 0; w < DW_NBW; w++) begin
                    logic en, lo;
                    logic [7:0] d;
                    en = 1'b0;
                    d = 8'd0;
                    for (int l = 0; l < AB; l++)
                        if (32'(dwa_ph[l]) == p && 32'(dwa_col[l]) == w) begin
                            en = 1'b1;
                            d = d | dwa_byte[l];
                        end
                    lo = DW_NBWL'(w) < dwa_ls[p][DW_NBWL-1:0];
                    dw_wdata[p][w] <= d;
                    // (per column phase and column: the even / odd memory's enable; a bank's
                    // is that and its row phase, below: one OR tree per column, not one per bank)
                    dwb_ene[p][w] <= en && !(r0[0] ^ lo);
                    dwb_eno[p][w] <= en && (r0[0] ^ lo);
    `ifndef SYNTHESIS
                    for (int r = 0; r < DW_K; r++) begin
                        dw_wee_ref[r * DW_K + p][w] <= dwa_rkv[r] && en && !(r0[0] ^ lo);
                        dw_weo_ref[r * DW_K + p][w] <= dwa_rkv[r] && en && (r0[0] ^ lo);
                    end
                    if (dwa_v && en && 32'(r0) + 32'(lo) >= (32'(dwa_half) + 1) * (DW_HALF / DW_NBW))
                        $error("dg_loader: depthwise patch past its dw bank half (DW_HALF)");
    `endif
                end
                for (int r = 0; r < DW_K; r++) begin
                    dw_wao[r * DW_K + p] <= DW_RAW'(r0 >> 1);
                    dw_wae[r * DW_K + p] <= DW_RAW'(r0 >> 1) + DW_RAW'(r0[0]);
                end
            end
        end
        // stage B's write enables per row phase: dwa_v (its condition) and the row's phase in one
        // register, so that a column's enable is its data select's OR and one gate
        always_ff @(posedge clk)
            for (int r = 0; r < DW_K; r++) begin
                dwa_rkv[r] <= pend_valid && rd_valid && !pend_out[PEND_W-1] && l_dw && run
                              && 32'(PHW'(pend_out[41 +: 8])) == r;
                dwb_rkv[r] <= dwa_rkv[r];
            end
        // a bank's column enables: its column phase's (stage B's registers) and its row phase's,
        // one gate from registers in front of the memories' byte enables
        always_comb
            for (int r = 0; r < DW_K; r++)
                for (int p = 0; p < DW_K; p++) begin
                    dw_wee[r * DW_K + p] = dwb_ene[p] & {DW_NBW{dwb_rkv[r]}};
                    dw_weo[r * DW_K + p] = dwb_eno[p] & {DW_NBW{dwb_rkv[r]}};
                end
    `ifndef SYNTHESIS
        always_ff @(posedge clk)
            for (int b = 0; b < DW_NBK; b++)
                if (dw_wee[b] != dw_wee_ref[b] || dw_weo[b] != dw_weo_ref[b])
                    $error("dg_loader: depthwise bank %0d's write enables %h %h (want %h %h)", b,
                           dw_wee[b], dw_weo[b], dw_wee_ref[b], dw_weo_ref[b]);
    `endif
    `ifndef SYNTHESIS
        always_ff @(posedge clk)
            for (int r = 0; r < DW_K; r++)
                if (dwa_rkv[r] != (dwa_v && 32'(dwa_rk) == r))
                    $error("dg_loader: depthwise stage B's row-phase enables %b (dwa_v %0d, rk %0d)", dwa_rkv, dwa_v, dwa_rk);
    `endif
        // stage A: a patch row's beat (the receive side's condition for it, as the patch banks')
        always_ff @(posedge clk)
            if (run && pend_valid && rd_valid && !pend_out[PEND_W-1] && l_dw) begin   // (run: pf_active)
                // depthwise: the beat's bytes of the row into stage A (dw banks above)
                logic [PHW-1:0] ph, rk;
                logic [16:0] rem;
                logic [DW_AW-1:0] cur, rbase, lsph;
                logic [DW_AW-1:0] pb [DW_K];
                logic [DW_AW-1:0] pbr [DW_K];
                logic [ABL-1:0] rlo;
                logic [7:0] roff;
                rk = PHW'(pend_out[41 +: 8]);
                roff = pend_out[33 +: 8];
                rbase = pend_out[PE_RB +: DW_AW];
                if (pr_first) begin
                    // row start: pixel dw_c0 (phase dw_c0), channel 0 at byte roff
                    // (rem = C + roff, cur = rbase - roff, the phases before dw_c0 at
                    // rbase + dw_cst: from the entry)
                    ph = PHW'(dw_c0);
                    rem = pend_out[PE_REM +: 17];
                    cur = pend_out[PE_CUR +: DW_AW];
                    lsph = rbase;
                    for (int j = 0; j < DW_K; j++)
                        pb[j] = (32'(j) < 32'(dw_c0)) ? pend_out[PE_PBH +: DW_AW] : rbase;
                end else begin
                    ph = dw_ph;
                    rem = dw_rem;
                    cur = dw_cur;
                    lsph = dw_cur;
                    pb = dw_pb;
                end
`ifndef SYNTHESIS
                if (pr_first != (pr_beat == 16'd0)
                    || (pr_first && (32'(rem) != 32'(L.cin_st) + 32'(roff) || cur != rbase - DW_AW'(roff)
                                     || pend_out[PE_PBH +: DW_AW] != rbase + DW_AW'(dw_cst))))
                    $error("dg_loader: depthwise row start (pr_first %0d, beat %0d) or its entry stale",
                           pr_first, pr_beat);
`endif
                dwa_rk <= rk;
                dwa_half <= pend_out[32];
                for (int j = 0; j < DW_K; j++)
                    dwa_ls[j] <= (32'(j) == 32'(ph)) ? lsph : pb[j];
                // (byte l's u = l - rem mod AB and the next beat's u = -rem mod AB: the table's
                // entries picked by rem's low bits rlo over a wired rotation, no subtract in
                // front of the picks; the phases' lins rotated by ph once, pbr[j] = pb[(ph + j)
                // mod k], so a byte's lin is pbr[dt_po[u]]: no phase add in front of that pick)
                rlo = rem[ABL-1:0];
                for (int j = 0; j < DW_K; j++) pbr[j] = pb[(32'(ph) + 32'(j)) % DW_K];
                for (int l = 0; l < AB; l++) begin
                    logic [31:0] jb;
                    logic ok;                    // byte in the row
                    logic [PHW-1:0] pl;
                    logic [DW_NBWL-1:0] lin;     // (its column: the lin's low bits)
                    logic [PHW-1:0] por [AB];
                    logic [DW_NBWL-1:0] ofr [AB];
                    jb = 32'(pr_beat) * AB + 32'(l);
                    ok = jb >= 32'(roff) && jb < 32'(roff) + pf_row_bytes;
                    dwa_byte[l] <= rd_data[l*8 +: 8];
                    for (int v = 0; v < AB; v++) begin
                        por[v] = dt_po[(l - v + AB) % AB];
                        ofr[v] = DW_NBWL'(dt_off[(l - v + AB) % AB]);
                    end
                    if (rem[16:ABL] != '0 || 32'(rlo) > 32'(l)) begin     // (l < rem)
                        pl = ph;
                        lin = DW_NBWL'(cur) + DW_NBWL'(l);
                    end else begin
                        pl = PHW'((32'(ph) + 32'(por[rlo])) % DW_K);
                        lin = DW_NBWL'(pbr[por[rlo]]) + ofr[rlo];
                    end
                    dwa_ph[l] <= ok ? PHN'(pl) : PHN'(DW_K);
                    dwa_col[l] <= lin;
                end
                // the state at the next beat's byte 0 (AB bytes on)
                if (rem[16:ABL] > (17-ABL)'(1) || (rem[16:ABL] == (17-ABL)'(1) && rlo != '0)) begin   // (rem > AB)
                    dw_ph <= ph;
                    dw_rem <= rem - 17'(AB);
                    dw_cur <= cur + DW_AW'(AB);
                    dw_pb <= pb;
                end else begin
                    logic [ABL-1:0] u;
                    logic [PHW-1:0] po;
                    u = ABL'(AB - 32'(rlo));
                    po = dt_po[u];
                    dw_ph <= PHW'((32'(ph) + 32'(po)) % DW_K);
                    dw_rem <= dt_rem[u];
                    dw_cur <= pbr[po] + dt_off[u];
                    for (int j = 0; j < DW_K; j++)
                        dw_pb[j] <= pb[j] + dt_kc[DT_KW'(dt_n[u][(32'(j) + DW_K - 32'(ph)) % DW_K])];   // (dt_kc[0] = 0)
                end
`ifndef SYNTHESIS
                for (int l = 0; l < AB; l++)
                    if ((32'(l) < 32'(rem)) != (rem[16:ABL] != '0 || 32'(rlo) > 32'(l))
                        || (32'(rem) > AB) != (rem[16:ABL] > (17-ABL)'(1) || (rem[16:ABL] == (17-ABL)'(1) && rlo != '0)))
                        $error("dg_loader: depthwise stage A's compares with rem %0d (byte %0d)", rem, l);
`endif
            end
    end else begin : g_nodw
        for (genvar b = 0; b < DW_NBK; b++) begin : g_q
            for (genvar w = 0; w < DW_NBW; w++) begin : g_w
                assign dw_q[b][w] = 8'd0;
            end
            wire unused_dwlin = &{1'b0, c1_dwlin[b]};
        end
        wire unused_dwpe = &{1'b0, pend_full, dw_c0, pr_first, t_dwrb_r[0], t_dwrb_r[1]};
    end

    // patch buffer: NB byte banks, both halves
    logic [NB-1:0] ib_we;
    logic [$clog2(IDEPTH)-1:0] ib_waddr [NB];
    logic [7:0] ib_wdata [NB];
    logic [$clog2(IDEPTH)-1:0] ib_raddr [NB];
    for (genvar b = 0; b < NB; b++) begin : g_ibank
        logic [7:0] mem [IDEPTH];
        always_ff @(posedge clk) begin
            if (ib_we[b]) mem[ib_waddr[b]] <= ib_wdata[b];
            ib_q[b] <= mem[ib_raddr[b]];
        end
    end
    // residual buffer: per lane, both halves
    logic [DG_TM-1:0] rb_we;
    logic [$clog2(2*RPIX)-1:0] rb_waddr;
    logic [7:0] rb_wdata [DG_TM];
    logic [$clog2(2*RPIX)-1:0] rb_raddr;
    for (genvar l = 0; l < DG_TM; l++) begin : g_rbank
        logic [7:0] mem [2*RPIX];
        always_ff @(posedge clk) begin
            if (rb_we[l]) mem[rb_waddr] <= rb_wdata[l];
            rb_q[l*8 +: 8] <= mem[rb_raddr];
        end
    end


    // ------------------------------------------------------------------ read-channel users
    wire pf_active = run;
    wire sp_active = ld_busy;

    // span issue
    logic [63:0] sp_addr;
    logic [15:0] sp_nbytes;
    logic [1:0]  sp_kind;
    // Weight span addresses without multiplies in the issue loop: a span (sp_i, sp_j) is at
    //   ic layout:  w_abs + in_list[i] * (kk * out_c) + m0 * kk + j * mg   (ic_g_k_k_m)
    //   oc layout:  w_abs + ch_i * (kk * in_c) + j * in_c       (im2col: ch_i * kp + j * TN)
    // sp_waddr holds it: + jstep per span of the same i; a new i (and the phase start) costs
    // one cycle without issue (sp_wok = 0) in which x * lmul is formed from registers
    // (x = the new i's in-channel (ic_qa), depthwise channel (ic_qa or i), or lane channel,
    // looked ahead in sp_x_next).
    logic [63:0] sp_waddr;
    logic        sp_wok;
    // (sp_lmul < 2^24: kk * out_c, kk * in_c <= 255 * 65535, kp and the dw row < 2^16; 24 bits
    // make x * sp_lmul one DSP48E2)
    logic [23:0] sp_lmul;              // the layer's constants (registered)
    logic [31:0] sp_jstep;
    logic [31:0] sp_tmkk;              // Tm * kk (the layer's)
    logic [31:0] ld_gkk;               // ld_g * Tm * kk
    logic [15:0] sp_x_next;            // oc layout: the lane channel of span index sp_i + 1
    always_ff @(posedge clk) begin
        sp_lmul <= 24'(L.ic_layout ? 32'(L.kk) * 32'(L.out_c) : L.im2col ? 32'(L.kp)
                   : l_dw ? ((32'(L.kk) + 32'(DG_TN - 1)) >> TNL) << TNL : 32'(L.kk) * 32'(L.in_c));
        sp_jstep <= L.ic_layout ? 32'(ld_mg) : L.im2col ? 32'(DG_TN) : 32'(L.in_c);
        sp_tmkk <= 32'(L.kk) * DG_TM;
        sp_rstep <= (L.im2col || l_dw) ? 16'd1 : 16'(L.N);
        sp_x_next <= ld_chs[32'(sp_i + 16'd1) % DG_TM];
    end
    // depthwise: channel id of active channel j (the loader's span index)
    wire [15:0] dw_chi = L.out_ch_gated ? ic_qa : sp_i;
    wire [15:0] sp_pch = l_dw ? dw_chi : ld_chs[32'(sp_i) % DG_TM];      // param span's channel
    // more chunks of this oc-layout span after the current one
    // (sp_lbig: sp_left > SPAN_CHUNK, a flag written with sp_left; sp_ocw: the layer's plain
    // oc layout, registered: no compare in the issue path)
    logic sp_lbig, sp_ocw, sp_inc_big;
    wire sp_more = sp_phase == 2'd1 && sp_ocw && sp_lbig;
    // The issue loop's end tests as flags registered one step ahead (issue 16 depth: no add
    // and compare of sp_j / sp_i in the issue path): sp_jlast = (sp_j + 1 == the kernel
    // positions), sp_il0 / sp_il1 = (sp_i + 1 == the spans of phase 0 / 1); the limits - 2
    // and "== 1" registered (the layer's: sp_jend_*; the group's: at ld_start, sp_nl_*, sp_l1_*)
    logic sp_jlast, sp_il0, sp_il1, sp_il0_d, sp_il1_d, sp_il0_f, sp_il1_f;
    logic [15:0] sp_i_f;
    logic [15:0] sp_jend_m2, sp_nl_m2, sp_l1_m2;
    logic sp_jend_one, sp_nl_one, sp_l1_one;
    always_ff @(posedge clk) begin
        sp_jend_m2 <= (L.im2col ? L.S : l_dw ? 16'd1 : 16'(L.kk)) - 16'd2;
        sp_jend_one <= (L.im2col ? L.S : l_dw ? 16'd1 : 16'(L.kk)) == 16'd1;
        sp_ocw <= !L.ic_layout && !L.im2col && !l_dw;
        sp_inc_big <= 32'(L.in_c) > SPAN_CHUNK;
    end
    // the group ld_g's lanes (bk_mg of the bank ld_start loads) and its spans per phase
    wire [7:0] ld_mg_new = (32'(L.n_out) - 32'(ld_g) * DG_TM > DG_TM) ? 8'(DG_TM) : 8'(32'(L.n_out) - 32'(ld_g) * DG_TM);
    wire [15:0] ld_nl_new = l_dw ? L.n_out : 16'(ld_mg_new);
    wire [15:0] ld_l1_new = L.ic_layout ? L.n_in : ld_nl_new;
`ifndef SYNTHESIS
    // the flags against the compares they replace (a group's load: bk_mg is the bank's)
    wire [15:0] sp_n_lanes = l_dw ? L.n_out : 16'(bk_mg[ld_b]);                // spans per phase
    always_ff @(posedge clk)
        if (run && ld_busy && (sp_jlast != (sp_j + 16'd1 == (L.im2col ? L.S : l_dw ? 16'd1 : 16'(L.kk)))
                               || sp_il0 != (sp_i + 16'd1 == sp_n_lanes)
                               || sp_il1 != (sp_i + 16'd1 == (L.ic_layout ? L.n_in : sp_n_lanes))
                               || sp_lbig != (32'(sp_left) > SPAN_CHUNK)
                               || ld_mg != bk_mg[ld_b] || ld_chs != bk_ch[ld_b]))
            $error("dg_loader: span issue flags (sp_jlast %0d sp_il0 %0d sp_il1 %0d sp_lbig %0d) stale",
                   sp_jlast, sp_il0, sp_il1, sp_lbig);
`endif
    always_comb begin
        sp_kind = 2'(SP_PARAM);
        sp_addr = L.p_abs + 64'(sp_pch) * 64'd8;
        sp_nbytes = 16'd8;
        if (sp_phase == 2'd1) begin
            sp_addr = sp_waddr;
            if (L.ic_layout) begin
                sp_kind = 2'(SP_WIC);
                sp_nbytes = 16'(ld_mg);
            end else begin
                // one span per (lane sp_i, kernel position sp_j): in_c bytes (im2col: per
                // (lane, weight word sp_j) the Tn bytes of that word of the lane's kp-byte row)
                sp_kind = 2'(SP_WOC);
                // (depthwise: one span per channel, its row of R = S * Tn bytes: the k*k
                // taps and the zero padding)
                sp_nbytes = L.im2col ? 16'(DG_TN) : l_dw ? 16'(L.S) << TNL
                          : sp_more ? 16'(SPAN_CHUNK) : sp_left;
                sp_addr = sp_waddr + 64'(sp_c);
            end
        end
    end
    // (the span's offset in its beat from the address's low bits alone: no 64-bit carry chain
    // in front of the credit check)
    // Params: the lanes' offsets (p_abs + 8 * channel) are registers written at ld_start and
    // rotated one lane per param span, so the head sp_pofs[0] is the span's (depthwise without
    // out-gating: channel = span index, offsets repeat every AB / 8 <= Tm spans); depthwise
    // out-gated: from the listed channel ic_qa. Weights: sp_c is a multiple of AB (SPAN_CHUNK),
    // the offset is sp_waddr's low bits.
    logic [ABL-1:0] sp_pofs [DG_TM];
    logic sp_gdw;                  // depthwise with out-gating (the layer's, registered)
    wire [ABL-1:0] sp_off = sp_phase[0] ? ABL'(sp_waddr)
                          : sp_gdw ? ABL'(L.p_abs[ABL-1:0] + ABL'(ic_qa << 3)) : sp_pofs[0];
    // ic layout, one read per in-channel (formats.ic_weight_run_beats): when the group's rows
    // are whole beats (Tm, mg and kk * out_c multiples of AB) and kk * mg fits DG_WEIGHT_RUN_MAX_BEATS
    // beats, an in-channel's kk spans are one contiguous run: its first span (sp_j = 0) issues
    // ONE read command for all of them, the others only enter the span FIFO (no command, no
    // credit). The beats that reach the loader FIFO are the same either way (each span whole
    // beats at offset 0); the port's bursts are kk times fewer.
    logic sp_icm;                  // the loading group's ic spans merge (from ld_mg, registered)
    logic [31:0] sp_kkmg;          // kk * mg (registered)
    logic [31:0] sp_kkoc;          // kk * out_c: an in-channel's bytes (registered)
    logic sp_j0;                   // sp_j == 0
    always_ff @(posedge clk) begin
        sp_kkmg <= 32'(L.kk) * 32'(ld_mg);
        sp_kkoc <= 32'(L.kk) * 32'(L.out_c);
        sp_icm <= L.ic_layout && DG_TM % AB == 0 && 32'(ld_mg) % AB == 0 && sp_kkoc % AB == 0
                  && sp_kkmg <= DG_WEIGHT_RUN_MAX_BEATS * AB;
    end
    // the read command's beats: the span's, or for a merged ic read the in-channel's kk rows
    // sp_nbytes' cases + AB - 1 (the beats' round-up) as registers picked by registers
    // (sp_phase[0]: weights; phase 2 issues nothing): the layer's / group's weight span bytes
    // sp_wbr, the merged ic read's sp_kkmr, the oc chunk's sp_ocnr; then one add to the beats
    logic [16:0] sp_wbr;           // ic: mg; im2col: Tn; depthwise: S * Tn (+ AB - 1)
    logic [16:0] sp_kkmr;          // kk * mg + AB - 1
    logic [16:0] sp_ocnr;          // oc layout: the chunk's bytes min(sp_left, SPAN_CHUNK) + AB - 1
    logic [16:0] sp_incr;          // min(in_c, SPAN_CHUNK) + AB - 1
    always_ff @(posedge clk) begin
        sp_wbr <= {1'b0, 16'(L.ic_layout ? 16'(ld_mg) : L.im2col ? 16'(DG_TN) : 16'(L.S) << TNL)} + 17'(AB - 1);
        sp_kkmr <= 17'(16'(32'(L.kk) * 32'(ld_mg))) + 17'(AB - 1);
        sp_incr <= 17'(32'(L.in_c) > SPAN_CHUNK ? 16'(SPAN_CHUNK) : L.in_c) + 17'(AB - 1);
        sp_gdw <= l_dw && L.out_ch_gated;
    end
    wire [16:0] sp_rbr = !sp_phase[0] ? 17'(8 + AB - 1) : sp_icm ? sp_kkmr : sp_ocw ? sp_ocnr : sp_wbr;
    // beats = the high part + the low part's carry: the credit compare takes both cases of
    // the carry (beats_hi < free, <= free) in parallel, no add of the high bits in front
    wire [ABL:0] sp_rlo = (ABL+1)'(sp_off) + (ABL+1)'(sp_rbr[ABL-1:0]);
    wire [16-ABL:0] sp_rhi = sp_rbr[16:ABL];
    wire [23:0] sp_beats = 24'(sp_rhi) + 24'(sp_rlo[ABL]);
    wire sp_nocmd = sp_icm && sp_phase == 2'd1 && !sp_j0;
    // credit: a span is issued only if its beats fit the loader FIFO, so the weight port's
    // R channel never waits on the byte-serial loader (no burst holds the memory port); a
    // span without a command needs none (its beats were counted with the in-channel's read).
    // (sp_pre: the terms from registers; the credit compare enters last)
    wire sp_pre = sp_active && sp_phase != 2'd2 && (sp_phase != 2'd1 || sp_wok) && spf_in_ready;
    wire sp_cok = sp_rlo[ABL] ? sp_rhi < (17-ABL)'(ldf_free) : sp_rhi <= (17-ABL)'(ldf_free);
    wire sp_can_issue = sp_pre && (sp_nocmd || sp_cok);
`ifndef SYNTHESIS
    // the registered byte count and offset against the formulas they replace
    always_ff @(posedge clk)
        if (run && ld_busy && sp_phase != 2'd2 && (sp_phase != 2'd1 || sp_wok)
            && (sp_rbr != 17'((sp_icm && sp_phase == 2'd1) ? 16'(sp_kkmg) : sp_nbytes) + 17'(AB - 1)
                || sp_off != (sp_phase != 2'd1 ? ABL'(L.p_abs[ABL-1:0] + ABL'(sp_pch << 3))
                              : (L.ic_layout ? ABL'(sp_waddr) : ABL'(sp_waddr[ABL-1:0] + ABL'(sp_c))))))
            $error("dg_loader: span bytes + AB - 1 %0d / offset %0d stale (phase %0d, i %0d)", sp_rbr, sp_off, sp_phase, sp_i);
`endif
`ifndef SYNTHESIS
    // sp_icm / sp_kkmg are two cycles behind ld_mg (set at ld_start): settled before the
    // group's first weight span (the params phase and the sp_wok cycle come first)
    always_ff @(posedge clk)
        if (run && ld_busy && sp_phase == 2'd1 && sp_wok
            && (sp_icm != (L.ic_layout && DG_TM % AB == 0 && 32'(ld_mg) % AB == 0
                           && (32'(L.kk) * 32'(L.out_c)) % AB == 0
                           && 32'(L.kk) * 32'(ld_mg) <= DG_WEIGHT_RUN_MAX_BEATS * AB)
                || (sp_icm && sp_j0 && 32'(sp_beats) != (32'(L.kk) * 32'(ld_mg)) >> ABL)
                || sp_j0 != (sp_j == 16'd0)))
            $error("dg_loader: merged ic read flags stale (sp_icm %0d sp_beats %0d sp_j0 %0d)",
                   sp_icm, sp_beats, sp_j0);
    always_ff @(posedge clk)
        if (run && ld_busy && sp_phase == 2'd1 && L.ic_layout && ld_gkk != 32'(ld_g) * sp_tmkk)
            $error("dg_loader: ld_gkk %0d is not group %0d x Tm x kk", ld_gkk, ld_g);
`endif
`ifndef SYNTHESIS
    always_ff @(posedge clk)
        if (run && ld_busy && ((sp_phase != 2'd2 && sp_off != sp_addr[ABL-1:0]) || 32'(ldf_free) > LDF_DEPTH))
            $error("dg_loader: span offset %0d (address %0h) or credit %0d out of range", sp_off, sp_addr, ldf_free);
`endif

    // prefetch issue (patch rows or residual reads)
    // pf_iy = pf_iy0 + pf_r and pf_row_ok (the row is in the map and used; a 1x1 stride-2
    // conv samples only the even patch rows: the odd ones are not loaded) are registers,
    // counted with pf_r (PF_GEO4: row 0; PF_ROWS: the next row), so the read-command
    // arbitration has no add and compare in its path
    logic signed [31:0] pf_iy;
    logic pf_row_ok;
    // PF_ROWS' end tests as flags counted with pf_r / pf_c (no add and compare in the exit or
    // the read request): pf_rend = (pf_r == pf_ph), pf_rl1 = (pf_r + 1 == pf_ph), the same for
    // the columns; the limits - 2 registered in PF_GEO4
    logic pf_rend, pf_rl1, pf_cend, pf_cl1;
    logic [7:0] pf_ph_m2, pf_pw_m2;
    wire pf_skip_odd = L.k == 4'd1 && L.stride == 2'd2;
    logic [63:0] pf_row_addr;       // in_abs + iy * in_row_bytes + ixv0 * cin_st (PF_GEO4, + a row per row)
    logic [IAW-1:0] pf_cb;          // (ix0 + pf_c - ixv0) * cin_st: column pf_c's byte in a row
    wire [ABL-1:0] pf_row_off = pf_row_addr[ABL-1:0];
    wire [23:0] pf_row_beats = 24'((pf_row_bytes + 32'(pf_row_off) + AB - 1) >> ABL);
    // where the row's first beat goes: beat-aligned (rowbase = + row_off), or for im2col
    // so that the row's first loaded byte lands at pf_vb + pf_lo
    wire [IAW-1:0] pf_row_dst = L.im2col ? pf_vb + IAW'(pf_lo) - IAW'(pf_row_off) : pf_bufptr;
    // residual: lanes jl..jh whose bytes share one beat. The group's channels ascend with the
    // lane (dense, or the sorted out-channel list), so the lanes in jl's beat are a run from
    // jl: jh is the last lane j < mg in that beat (no serial chain), and the beat compare
    // needs only the pixel address's offset in its beat (the rest adds to both sides).
    // The lanes j < mg in jl's beat are exactly the run [jl, jh] (the lanes before jl are in
    // earlier beats), so jh is where that run ends: a one-hot edge and an OR encode, in
    // parallel (no priority chain over the lanes).
    // The group's lane data (bk_ch, bk_mg of bank pf_g[0]) as registers: a copy (pf_chs,
    // pf_mgs) and per lane the flags below, one and two cycles behind the bank. Both are
    // settled in PF_RES: the prefetcher starts a tile (PF_IDLE) only once the bank holds its
    // group (bk_lanes, bk_grp), at least four states before PF_RES, and the bank is
    // reloaded only after the group is written back (simulation checks both below).
    logic [15:0] pf_chs [DG_TM];
    logic [7:0] pf_mgs;
    logic [ABL-1:0] pr_lo [DG_TM];   // channel mod AB
    logic [DG_TM-1:0] pr_z, pr_one;  // lane j + 1's channel div AB is lane j's (+ 0, + 1)
    logic [DG_TM-1:0] pr_last;       // lane j is the group's last (j + 1 == mg)
    logic [DG_TM-1:0] pr_lt;         // lane j is before it (j + 1 < mg)
    always_ff @(posedge clk) begin
        pf_chs <= bk_ch[pf_g[0]];
        pf_mgs <= bk_mg[pf_g[0]];
        for (int j = 0; j < DG_TM; j++) begin
            pr_lo[j] <= pf_chs[j][ABL-1:0];
            pr_z[j] <= j + 1 < DG_TM && (pf_chs[(j + 1) % DG_TM] >> ABL) == (pf_chs[j] >> ABL);
            pr_one[j] <= j + 1 < DG_TM && (pf_chs[(j + 1) % DG_TM] >> ABL) == (pf_chs[j] >> ABL) + 16'd1;
            pr_last[j] <= 32'(pf_mgs) == j + 1;
            pr_lt[j] <= 32'(pf_mgs) > j + 1;
        end
    end
    // The lane end flags of the current pixel (below) depend only on the pixel address mod AB
    // and the group's pr_* flags, so they are a register (pf_ends) formed a pixel ahead: the
    // tile's first pixel's in PF_GEO3 from its pixel index mod AB (pf_pq, PF_GEO2), the next
    // pixel's in PF_RES from the address mod AB + the step mod AB (pf_s1: out_c; pf_s2: the
    // row step out_c * (out_w - t_ow + 1), PF_GEO2). The find-first then starts at registers.
    logic [DG_TM*ABL-1:0] pr_lov;    // pr_lo, packed (lane_ends' argument)
    for (genvar j = 0; j < DG_TM; j++) begin : g_prlov
        assign pr_lov[j*ABL +: ABL] = pr_lo[j];
    end
    // lane j ends its beat at pixel offset o (o = the pixel address mod AB): c_j = the carry of
    // o + (channel j mod AB); see the find-first below
    function automatic logic [DG_TM-1:0] lane_ends(input logic [ABL-1:0] o, input logic [DG_TM*ABL-1:0] lo,
                                                   input logic [DG_TM-1:0] z, one, last);
        logic [DG_TM-1:0] c, e;
        for (int j = 0; j < DG_TM; j++)
            c[j] = (32'(o) + 32'(lo[j*ABL +: ABL])) >= AB;
        for (int j = 0; j < DG_TM; j++)
            e[j] = last[j] || !((z[j] && c[(j + 1) % DG_TM] == c[j]) || (one[j] && c[j] && !c[(j + 1) % DG_TM]));
        return e;
    endfunction
    logic [DG_TM-1:0] pf_ends;       // the lane end flags of pixel pf_pixaddr
    logic [ABL-1:0] pf_pq;           // the tile's first pixel index mod AB (PF_GEO2)
    logic [ABL-1:0] pf_s1, pf_s2;    // the pixel steps mod AB (next pixel, next row)
    logic pf_pxl;                    // pf_px + 1 == t_ow: the row's last pixel (counted)
    logic pf_ylast;                  // pf_py + 1 == t_oh: the tile's last row (counted)
    logic [7:0] pf_pidx;             // pf_py * t_ow + pf_px (mod 256; counted: +1 per pixel)
    always_ff @(posedge clk) pf_s1 <= ABL'(L.out_c);
    // residual: lanes jl..jh whose bytes share one beat. The group's channels ascend with the
    // lane (dense, or the sorted out-channel list), so the lanes in jl's beat are a run from
    // jl: jh is the first lane j >= jl that ends its beat (j + 1 == mg, or lane j + 1's byte
    // in a later beat). With o = the pixel address mod AB and c_j = the carry of o + (channel
    // j mod AB), lane j + 1's beat is lane j's iff the channels' div AB are equal and c_j =
    // c_(j+1), or differ by one with c_j = 1, c_(j+1) = 0 (lane_ends above, registered per
    // pixel in pf_ends), then a find-first over the lanes (no add or compare in the path).
    // The find-first: `below` (lane j: some lane under j ends its beat) and the one-hot jh from
    // m - 1 (a carry chain), jh and jh + 1 as ORs of constant masks; the lanes >= jl are the
    // register pf_jge (no compare with pf_jl), and the next one, the lanes > jh, is `below`.
    logic [7:0] pf_jh, pf_jh1;       // jh and jh + 1
    logic pf_rlast;                  // jh is the group's last lane (jh + 1 >= mg)
    logic [DG_TM-1:0] pf_below;      // lane j: some lane under j ends its beat (= j > jh)
    always_comb begin
        logic [DG_TM-1:0] m, oh;
        m = pf_ends & pf_jge;
        // below[j] = |m[j-1:0]: m ^ (m - 1) sets the lanes up to m's lowest set one (all when
        // m = 0), so its complement is `below` and m & (m ^ (m - 1)) the one-hot lowest lane: a
        // carry chain, not the per-lane ORs (which ABC9 maps as a chain of LUTs, 14 levels)
        pf_below = ~(m ^ (m - DG_TM'(1)));
        oh = m & (m ^ (m - DG_TM'(1)));
        for (int b = 0; b < 8; b++) begin
            logic [DG_TM-1:0] k0, k1;
            for (int j = 0; j < DG_TM; j++) begin
                k0[j] = ((j >> b) & 1) == 1;
                k1[j] = (((j + 1) >> b) & 1) == 1;
            end
            pf_jh[b] = |(oh & k0);
            pf_jh1[b] = |(oh & k1);
        end
        // (jh is mg - 1 iff no lane in [jl, mg - 1) ends its beat: no find-first in the path)
        pf_rlast = !(|(m & pr_lt));
    end
    wire [63:0] pf_res_addr = pf_pixaddr + 64'(pf_chs[32'(pf_jl) % DG_TM]);
`ifndef SYNTHESIS
    // the narrowed products' ranges (ld_row_prod, the PF_RES row step)
    always_ff @(posedge clk) begin
        if (pf_active && pf_state == PF_GEO4 && (pf_iy0 < -32'sd524288 || pf_iy0 >= 32'sd524288))
            $error("dg_loader: patch row %0d outside ld_row_prod's range", pf_iy0);
        if (pf_active && pf_state == PF_RES && 32'(t_ow[pf_h]) > 32'(L.out_w))
            $error("dg_loader: tile width %0d > out_w %0d", t_ow[pf_h], L.out_w);
        // PF_ROWS' flags against the compares they replace
        if (pf_active && pf_state == PF_ROWS && (pf_rend != (pf_r == pf_ph) || pf_rl1 != (pf_r + 8'd1 == pf_ph)
                                                 || pf_cend != (pf_c == pf_pw) || pf_cl1 != (pf_c + 8'd1 == pf_pw)))
            $error("dg_loader: PF_ROWS flags (rend %0d rl1 %0d cend %0d cl1 %0d) stale", pf_rend, pf_rl1, pf_cend, pf_cl1);
    end
`endif
`ifndef SYNTHESIS
    // the former formulation (compares of full channel + offset sums), as the reference
    always_ff @(posedge clk)
        if (pf_state == PF_RES) begin
            logic [16:0] bl;
            logic [DG_TM:0] eq;
            logic [7:0] enc;
            logic found, stale;
            bl = (17'(pf_pixaddr[ABL-1:0]) + 17'(bk_ch[pf_g[0]][32'(pf_jl) % DG_TM])) >> ABL;
            eq = '0;
            for (int j = 0; j < DG_TM; j++)
                eq[j] = 8'(j) < bk_mg[pf_g[0]] && (17'(pf_pixaddr[ABL-1:0]) + 17'(bk_ch[pf_g[0]][j])) >> ABL == bl;
            enc = 8'd0;
            found = 1'b0;
            for (int j = 0; j < DG_TM; j++)
                if (eq[j] && !eq[j + 1]) begin
                    enc = enc | 8'(j);
                    found = 1'b1;
                end
            if (!found) enc = pf_jl;
            stale = pf_mgs != bk_mg[pf_g[0]]
                    || pf_ends != lane_ends(pf_pixaddr[ABL-1:0], pr_lov, pr_z, pr_one, pr_last)
                    || pf_pxl != (pf_px + 8'd1 == t_ow[pf_h]) || pf_ylast != (pf_py + 8'd1 == t_oh[pf_h]) || pf_pidx != 8'(32'(pf_py) * 32'(t_ow[pf_h]) + 32'(pf_px));
            for (int j = 0; j < DG_TM; j++)
                if (pf_jge[j] != (8'(j) >= pf_jl)) stale = 1'b1;
            for (int j = 0; j < DG_TM; j++)
                if (pf_chs[j] != bk_ch[pf_g[0]][j]) stale = 1'b1;
            if (stale || enc != pf_jh
                || pf_jh1 != enc + 8'd1 || pf_rlast != (enc + 8'd1 >= bk_mg[pf_g[0]]))
                $error("dg_loader: residual lane run (pf_jh %0d, want %0d) or its lane copy stale",
                       pf_jh, enc);
        end
`endif

    // read commands in ST_RUN: the prefetcher on the read master (the sequencer and gate unit
    // use it only outside the run), the span loader on the weight master; only in the run
    wire pf_req_row = pf_state == PF_ROWS && !pf_rend && pf_row_ok;      // (pf_r != pf_ph)
    wire pf_req_res = pf_state == PF_RES;
    wire pf_req = pf_active && (pf_req_row || pf_req_res) && pend_in_ready;
    wire pf_fire = pf_req && rcmd_ready;
    // a span with a read command takes the weight port; one without (a merged ic read's later
    // spans) only enters the span FIFO, whatever the port does
    wire ld_fire = run && sp_pre && (sp_nocmd || (sp_cok && wt_rcmd_ready));
    wire ld_fire_c = ld_fire && !sp_nocmd;
    // (a beat moving from "requested" into the FIFO leaves the credit unchanged: only the
    // pops return credit)
    wire [LFW-1:0] ldf_base = ldf_free + LFW'(ldf_valid && ldf_pop);

    always_comb begin
        // (the address and beats need only be right with the valid: picked by the request kind)
        rcmd_valid = run && pf_req;
        rcmd_addr = pf_req_row ? pf_row_addr & ~64'(AB - 1) : pf_res_addr & ~64'(AB - 1);
        rcmd_beats = pf_req_row ? pf_row_beats : 24'd1;
        wt_rcmd_valid = run && sp_can_issue && !sp_nocmd;
        wt_rcmd_addr = sp_addr & ~64'(AB - 1);
        wt_rcmd_beats = sp_beats;
        pend_push = 1'b0;
        pend_full = '0;
        spf_push = 1'b0;
        spf_in = '0;
        if (run) begin
                if (pf_req) begin
                    pend_push = pf_fire;
                    if (pf_req_row) begin
                        pend_full = {1'b0, pf_dwb + DW_AW'(dw_cst), pf_dwb - DW_AW'(pf_row_off),
                                     17'(L.cin_st) + 17'(pf_row_off),
                                     pf_dwb, 8'(pf_dwk), 8'(pf_row_off), pf_h, 32'(pf_row_dst)};
                    end else begin
                        pend_full = {1'b1, (PEND_WF - 34)'(0), pf_h, pf_pidx, pf_jl, pf_jh,
                                     8'(pf_pixaddr[ABL-1:0])};
                    end
                end
                spf_push = ld_fire;
                spf_in = {!sp_more, sp_kind, sp_i, sp_row, 8'(sp_off), sp_nbytes};
        end
    end

    always_ff @(posedge clk)
        for (int q = 0; q < DG_MAX_GRID; q++) gw_q[q] <= 16'(32'(q) * 32'(L.grid_w));

    // patch banks read (c1 -> data at c2)
    always_comb begin
        for (int b = 0; b < NB; b++) begin
            logic [IAW-1:0] a;
            a = c1_addr;
            ib_raddr[b] = $clog2(IDEPTH)'((32'(a) >> NBL) + ((NBL'(b) < a[NBL-1:0]) ? 1 : 0) + 32'(c1_badd[b]));
        end
        wb_raddr = (WAW+1)'(32'(c1_gb) * WDEPTH + 32'(c1_wa));
        rb_raddr = c1_rbaddr;
    end

    assign pf_idle = pf_state == PF_IDLE;
    // the list / table read addresses (the sequencer answers in the same cycle)
    assign tl_ra = I_MAX_TILES'(pf_i);
    assign rl_ra = I_MAX_TILES'(pf_i - L.n_act);
    assign row_ra = I_MAX_HEIGHT'(pf_iy);
    assign col_ra = I_MAX_WIDTH'(pf_ix0 + 32'(pf_c));

    // next values of the counters the list memories are read at (the always_ff below takes
    // them as they are: one source for both)
    wire ld_start = run && !ld_busy && ld_g != L.G && 32'(wb_gdone) + 32'd1 >= 32'(ld_g);
    wire sc_last = spf_out[SPF_W-1];          // the span's last chunk
    wire [1:0] sc_kind = spf_out[SPF_W-2 -: 2];
    // oc layout: the byte of in-channel sc_b is kept (a compact input keeps the listed ones)
    wire oc_keep = sc_wocf || (sc_nptr < L.n_in && ic_qb == sc_b);
    always_comb begin
        ld_g_d = ld_g;
        if (run_init) ld_g_d = 16'd0;
        if (ld_busy && sp_phase == 2'd2 && !spf_valid) ld_g_d = ld_g + 16'd1;
        if (rst) ld_g_d = 16'd0;
        // (the values after an issue formed from registers, picked by ld_fire last; ld_start
        // and ld_fire exclude each other: ld_start needs !ld_busy, an issue ld_busy)
        sp_i_f = sp_i;
        sp_il0_f = sp_il0;
        sp_il1_f = sp_il1;
        if (sp_phase == 2'd0 && sp_il0) begin
            sp_i_f = 16'd0;
            sp_il0_f = sp_nl_one;
            sp_il1_f = sp_l1_one;
        end else if (sp_phase == 2'd0 || (!sp_more && sp_jlast)) begin
            sp_i_f = sp_i + 16'd1;
            sp_il0_f = sp_i == sp_nl_m2;
            sp_il1_f = sp_i == sp_l1_m2;
        end
        sp_i_d = sp_i;
        sp_il0_d = sp_il0;
        sp_il1_d = sp_il1;
        if (ld_start) begin
            sp_i_d = 16'd0;
            sp_il0_d = ld_nl_new == 16'd1;
            sp_il1_d = ld_l1_new == 16'd1;
        end
        if (ld_fire) begin
            sp_i_d = sp_i_f;
            sp_il0_d = sp_il0_f;
            sp_il1_d = sp_il1_f;
        end
        sc_nptr_d = sc_nptr;
        if (ld_start) sc_nptr_d = 16'd0;
        else if (ld_consume) begin
            if (sc_kind != 2'(SP_PARAM) && sc_kind != 2'(SP_WIC) && oc_keep && !sc_wocf)
                sc_nptr_d = sc_nptr + 16'd1;
            if (last_byte && sc_last) sc_nptr_d = 16'd0;
        end
    end

    // Depthwise parameters (a layer's whole rows stay on chip): per lane l one RAM of 64-bit
    // words {mult, bias}, row g = channel g * Tm + l, read by the write-back through a
    // registered port at the m-group its first stage takes next (dw_re/dw_ra: no per-group
    // register banks, no SG_MAX-way mux). A channel's param span (8 bytes, one per cycle,
    // sc_b = 0..7) is collected in dwp_sh and written as ONE word at its last byte: one write
    // enable per lane word (byte writes at a run-time bit offset into a Tm*32-bit row made
    // Yosys map every bit to its own LUTRAM cell: 2 x 1024 RAM64M8 at ultra96).
    if (DG_DEPTHWISE) begin : g_dwparams
        logic [55:0] dwp_sh;                 // the span's bytes 0..6 (byte 6 at the top)
        wire [15:0] dsi = spf_out[SPF_W-4 -: 16];
        wire dwe = ld_consume && sc_kind == 2'(SP_PARAM) && l_dw;
        wire dwl = dwe && sc_b == 16'd7;     // the span's last byte: write the word
        always_ff @(posedge clk)
            if (dwe) dwp_sh <= {ld_byte0, dwp_sh[55:8]};
        // Lanes 0 .. DW_PBL-1 keep their rows in block RAM, one RAMB36 each (SDP 512 x 72:
        // 64 of 72 bits, SG_MAX of 512 rows), the others in distributed RAM. Both are the same
        // synchronous read-first memory (a write and a read of one row in one cycle return the
        // old row, as the LUTRAM's registered read did; Yosys maps the RAMB36 read-first, no
        // bypass logic), so the port is unchanged for any dw_re / dw_ra sequence: no assumption
        // about the write-back's read order. Above 64 rows a lane's LUTRAM is two RAM64M8
        // halves and a 2:1 read mux per bit (~210 LUT per lane at 128 rows: ~146 LUTRAM + 64
        // mux); at 64 rows or fewer it is cheap, and a block RAM would waste its depth.
        // A narrower, deeper block RAM read over RQ_SHARE cycles with the next m-group's row
        // prefetched does not fit the port: dw_ra is the write-back queue's head even when
        // the queue is empty (a stale entry, indistinguishable here from a real read), and
        // after a drain s1 loads 2 cycles apart (1-pixel tiles: 2 m-groups in 2 cycles), while
        // a 256-bit row fetch takes 4 + 1 cycles (sim/results/synth/loader/README.md, round 13).
        localparam int DW_PBL = (SG_MAX > 64) ? DG_TM / 2 : 0;
        for (genvar l = 0; l < DG_TM; l++) begin : g_lane
            logic [63:0] q;
            wire pwe = dwl && 32'(dsi) % DG_TM == l;
            if (l < DW_PBL) begin : g_bram
                (* ram_style = "block" *) logic [63:0] pmem [SG_MAX];
                always_ff @(posedge clk) begin
                    if (pwe) pmem[I_SG'(dsi >> TML)] <= {ld_byte0, dwp_sh};
                    if (dw_re) q <= pmem[dw_ra];
                end
            end else begin : g_lutram
                (* ram_style = "distributed" *) logic [63:0] pmem [SG_MAX];
                always_ff @(posedge clk) begin
                    if (pwe) pmem[I_SG'(dsi >> TML)] <= {ld_byte0, dwp_sh};
                    if (dw_re) q <= pmem[dw_ra];
                end
            end
            assign dw_bias_q[l] = q[31:0];
            assign dw_mult_q[l] = q[63:32];
        end
    end else begin : g_nodwparams
        for (genvar l = 0; l < DG_TM; l++) begin : g_lane
            assign dw_bias_q[l] = 32'd0;
            assign dw_mult_q[l] = 32'd0;
        end
        wire unused_dwp = &{1'b0, dw_re, dw_ra};
    end

    always_ff @(posedge clk) begin
        wb_lane <= '0;
`ifndef SYNTHESIS
        wb_lane_ref <= '0;
`endif
        ib_we <= '0;
        dwa_v <= pend_valid && rd_valid && !pend_out[PEND_W-1] && l_dw && pf_active;
        rb_we <= '0;
        ld_g <= ld_g_d;
        // m0 * kk of the group ld_g_d (ic layout: the group's block in every channel's row),
        // counted with ld_g (ld_g_d's conditions, in its order)
        if (run_init) ld_gkk <= 32'd0;
        if (ld_busy && sp_phase == 2'd2 && !spf_valid) ld_gkk <= ld_gkk + sp_tmkk;
        if (rst) ld_gkk <= 32'd0;
        sp_i <= sp_i_d;
        sp_il0 <= sp_il0_d;
        sp_il1 <= sp_il1_d;
        sc_nptr <= sc_nptr_d;
        if (run_init) begin
            ld_busy <= 1'b0;
            bk_lanes <= 2'b00;
            bk_ready <= 2'b00;
            bk_grp[0] <= 16'hFFFF;
            bk_grp[1] <= 16'hFFFF;
            pf_state <= PF_IDLE;
            pf_i <= 16'd0;
            pf_g <= 16'd0;
            pf_h <= 1'b0;
            full <= 2'b00;
        end
        // -------------------------------------------------------------- group loader
        // bank ld_g%2 is free once group ld_g-2 is written back
        if (ld_start) begin
            bk_grp[ld_b] <= ld_g;
            bk_m0[ld_b] <= 16'(32'(ld_g) * DG_TM);
            bk_mg[ld_b] <= ld_mg_new;
            ld_mg <= ld_mg_new;
            sp_nl_m2 <= ld_nl_new - 16'd2;
            sp_nl_one <= ld_nl_new == 16'd1;
            sp_l1_m2 <= ld_l1_new - 16'd2;
            sp_l1_one <= ld_l1_new == 16'd1;
            sp_jlast <= sp_jend_one;
            sp_lbig <= sp_inc_big;
            for (int j = 0; j < DG_TM; j++) begin
                logic [15:0] m;
                m = 16'(32'(ld_g) * DG_TM + j);
                // (oc_q: the group's row of the out-channel list; past n_out: its first entry)
                if (32'(m) >= 32'(L.n_out)) begin
                    m = 16'(32'(ld_g) * DG_TM);
                    if (L.out_ch_gated) m = oc_q[15:0];
                end else if (L.out_ch_gated) m = oc_q[j*16 +: 16];
                bk_ch[ld_b][j] <= m;
                ld_chs[j] <= m;
                sp_pofs[j] <= ABL'(L.p_abs[ABL-1:0] + ABL'((l_dw ? 16'(j) : m) << 3));
            end
            bk_lanes[ld_b] <= 1'b1;
            bk_ready[ld_b] <= 1'b0;
            ld_busy <= 1'b1;
            sp_phase <= 2'd0;
            sp_j <= 16'd0;
            sp_j0 <= 1'b1;
            sp_dwrow <= 16'd0;
            sp_c <= 16'd0;
            sp_left <= L.in_c;
            sp_ocnr <= sp_incr;
            sc_b <= 16'd0;
            sc_started <= 1'b0;
        end
        if (ld_busy) begin
            // issue side
            if (sp_phase == 2'd1 && !sp_wok) begin
                // the first span of index sp_i (sp_j = 0)
                logic [15:0] x;
                x = L.ic_layout ? ic_qa : l_dw ? dw_chi : (sp_i == 16'd0) ? ld_chs[0] : sp_x_next;
                sp_waddr <= L.w_abs + (L.ic_layout ? 64'(ld_gkk) : 64'd0) + 64'(x) * 64'(sp_lmul);
                sp_row <= L.ic_layout ? 16'(sp_i >> TNL) : l_dw ? sp_dwrow : 16'd0;
                sp_wok <= 1'b1;
            end
            if (ld_fire) begin
                if (sp_phase == 2'd0) begin
                    for (int j = 0; j < DG_TM; j++) sp_pofs[j] <= sp_pofs[(j + 1) % DG_TM];
                    if (sp_il0) begin                           // (sp_i + 1 == sp_n_lanes)
                        sp_phase <= (L.n_act == 0 || L_no_mac) ? 2'd2 : 2'd1;
                        sp_wok <= 1'b0;
                    end
                end else if (sp_more) begin
                    sp_c <= sp_c + 16'(SPAN_CHUNK);
                    sp_left <= sp_left - 16'(SPAN_CHUNK);
                    sp_lbig <= 32'(sp_left) > 2 * SPAN_CHUNK;
                    sp_ocnr <= 32'(sp_left) > 2 * SPAN_CHUNK ? 17'(SPAN_CHUNK + AB - 1) : 17'(sp_left - 16'(SPAN_CHUNK)) + 17'(AB - 1);
                end else begin
                    // ic layout: in-channels x kernel positions; oc layout: lanes x kernel positions
                    sp_c <= 16'd0;
                    sp_left <= L.in_c;
                    sp_lbig <= sp_inc_big;
                    sp_ocnr <= sp_incr;
                    if (sp_jlast) begin                         // (sp_j + 1 == the positions)
                        sp_j <= 16'd0;
                        sp_j0 <= 1'b1;
                        sp_jlast <= sp_jend_one;
                        if (32'(sp_i) % DG_TM == DG_TM - 1) sp_dwrow <= sp_dwrow + 16'(L.S);
                        if (sp_il1) sp_phase <= 2'd2;           // (sp_i + 1 == n_in or the lanes)
                        sp_wok <= 1'b0;
                    end else begin
                        sp_j <= sp_j + 16'd1;
                        sp_j0 <= 1'b0;
                        sp_jlast <= sp_j == sp_jend_m2;
                        sp_waddr <= sp_waddr + 64'(sp_jstep);
                        sp_row <= sp_row + sp_rstep;
                    end
                end
            end
            // consume side: ld_k bytes per cycle (all into one weight-buffer row)
            if (ld_consume) begin
                logic [1:0] kind;
                logic [15:0] si;
                logic [15:0] row;
                kind = sc_kind;
                si = spf_out[SPF_W-4 -: 16];
                row = spf_out[SPF_W-20 -: 16];
                wb_rot <= ld_rot;
                case (kind)
                    2'(SP_PARAM): begin
                        if (l_dw) begin
                            // the depthwise rows (g_dwparams above)
                        end else if (sc_b < 16'd4) bk_bias[ld_b][32'(si) % DG_TM][sc_b[1:0] * 8 +: 8] <= ld_byte0;
                        else bk_mult[ld_b][32'(si) % DG_TM][sc_b[1:0] * 8 +: 8] <= ld_byte0;
                    end
                    2'(SP_WIC): begin
                        // bytes sc_b.. = lanes, in-channel si, kernel position (row = j * N + si / Tn)
                        wb_waddr <= (WAW+1)'(32'(ld_b) * WDEPTH + 32'(row));
                        // (lane l = sc_b + d is written iff d < k = min(KMAX, left_span,
                        // left_beat): d < left_span and pos + d < AB, for both sources of
                        // left_span / pos picked by sc_started: no min and add before the compares)
                        for (int l = 0; l < DG_TM; l++)
                            wb_lane[l] <= 32'(l) >= 32'(sc_b) && sc_in(KW'(32'(l) - 32'(sc_b)));
                        for (int t = 0; t < DG_TN; t++)
                            wb_slot[t] <= 32'(si) % DG_TN == t;
`ifndef SYNTHESIS
                        for (int l = 0; l < DG_TM; l++)
                            wb_lane_ref[l] <= 32'(l) >= 32'(sc_b) && 32'(l) < 32'(sc_b) + 32'(ld_k);
                        for (int t = 0; t < DG_TN; t++)
                            wb_slot_ref[t] <= 32'(si) % DG_TN == t;
`endif
                    end
                    default: begin
                        // bytes = in-channels sc_b.. of lane si at kernel position j (row =
                        // j * N, + the word of slot index ld_n); a compact input keeps only the
                        // listed channels (merge with the in-channel list, one byte per cycle)
                        // (depthwise: the lane's taps, all kept: tap n at word n / Tn)
                        wb_waddr <= (WAW+1)'(32'(ld_b) * WDEPTH + 32'(row) + (32'(ld_n) >> TNL));
                        for (int l = 0; l < DG_TM; l++)
                            wb_lane[l] <= 32'(si) % DG_TM == l;
                        // (slot t = n0 + d, n0 = ld_n mod Tn, iff d < k = min(kk, left_span,
                        // left_beat): kk = Tn - n0 (d < kk for every slot) or 1 (d = 0)
                        for (int t = 0; t < DG_TN; t++)
                            wb_slot[t] <= oc_keep && 32'(t) >= 32'(ld_n) % DG_TN
                                          && (sc_wocf || 32'(t) == 32'(ld_n) % DG_TN)
                                          && sc_in(KW'(32'(t) - 32'(ld_n) % DG_TN));
`ifndef SYNTHESIS
                        for (int l = 0; l < DG_TM; l++)
                            wb_lane_ref[l] <= 32'(si) % DG_TM == l;
                        for (int t = 0; t < DG_TN; t++)
                            wb_slot_ref[t] <= oc_keep && 32'(t) >= 32'(ld_n) % DG_TN
                                              && 32'(t) < 32'(ld_n) % DG_TN + 32'(ld_k);
`endif
                    end
                endcase
                sc_started <= 1'b1;
                sc_left <= ld_left;
                sc_pos <= (32'(pos) + 32'(ld_k) >= AB) ? '0 : pos + (ABL+1)'(ld_k);
                sc_b <= sc_b + 16'(ld_k);
                if (last_byte) begin
                    sc_started <= 1'b0;          // the next chunk starts at its own offset
                    if (sc_last) sc_b <= 16'd0;
                end
            end
            if (sp_phase == 2'd2 && !spf_valid) begin
                bk_ready[ld_b] <= 1'b1;
                ld_busy <= 1'b0;
            end
        end

        // -------------------------------------------------------------- prefetch
        if (pf_active) begin
            case (pf_state)
                PF_IDLE: begin
                    if (pf_g != L.G && !full[pf_h] && bk_lanes[pf_g[0]] && bk_grp[pf_g[0]] == pf_g) begin
                        logic [15:0] idx;
                        if (pf_i < L.n_act) idx = L.tile_gated ? tl_q : pf_i;   // (tl_ra = pf_i)
                        else idx = rl_q;                                        // (rl_ra = pf_i - n_act)
                        t_idx[pf_h] <= idx;
                        t_res_only[pf_h] <= pf_i >= L.n_act;
                        t_g[pf_h] <= pf_g;
                        t_glast[pf_h] <= pf_i + 16'd1 == L.n_seq;
                        pf_idx <= idx;
                        pf_state <= PF_ROW;
                    end
                end
                PF_ROW: begin
                    for (int q = 0; q < DG_MAX_GRID; q++) begin
                        pf_ge[q] <= pf_idx >= gw_q[q];
                        pf_rem[q] <= pf_idx - gw_q[q];
                    end
                    pf_state <= PF_ROW2;
                end
                PF_ROW2: begin
                    // pf_ge is a thermometer code (grid_w >= 1): the row is its last set bit, the
                    // one-hot edge; the row and column as ORs over it (no chain over q)
                    logic [7:0] ty;
                    logic [7:0] tx;
                    ty = 8'd0;
                    tx = 8'd0;
                    for (int q = 0; q < DG_MAX_GRID; q++) begin
                        logic e;
                        e = pf_ge[q] && (q + 1 == DG_MAX_GRID || !pf_ge[(q + 1) % DG_MAX_GRID]);
                        ty = ty | ({8{e}} & 8'(q));
                        tx = tx | ({8{e}} & 8'(pf_rem[q]));
                    end
                    pf_ty <= ty;
                    pf_tx <= tx;
                    pf_state <= PF_GEO;
                end
                PF_GEO: begin
                    logic [15:0] o0y, o0x;
                    o0y = 16'(32'(pf_ty) * 32'(L.tile));
                    o0x = 16'(32'(pf_tx) * 32'(L.tile));
                    t_o0y[pf_h] <= o0y;
                    t_o0x[pf_h] <= o0x;
                    t_oh[pf_h] <= (32'(L.out_h) - 32'(o0y) < 32'(L.tile)) ? 8'(L.out_h - o0y) : L.tile;
                    t_ow[pf_h] <= (32'(L.out_w) - 32'(o0x) < 32'(L.tile)) ? 8'(L.out_w - o0x) : L.tile;
                    pf_state <= PF_GEO2;
                end
                PF_GEO2: begin
                    if (L.maxpool) begin
                        logic [31:0] cy0, cx0, cy1, cx1;
                        cy0 = (t_o0y[pf_h] == 0) ? 32'd0 : 32'd2 * 32'(t_o0y[pf_h]) - 32'd1;
                        cx0 = (t_o0x[pf_h] == 0) ? 32'd0 : 32'd2 * 32'(t_o0x[pf_h]) - 32'd1;
                        cy1 = 32'd2 * (32'(t_o0y[pf_h]) + 32'(t_oh[pf_h]) - 32'd1) + 32'd2;
                        cx1 = 32'd2 * (32'(t_o0x[pf_h]) + 32'(t_ow[pf_h]) - 32'd1) + 32'd2;
                        if (cy1 > 32'(L.conv_h)) cy1 = 32'(L.conv_h);
                        if (cx1 > 32'(L.conv_w)) cx1 = 32'(L.conv_w);
                        t_cy0[pf_h] <= 16'(cy0);
                        t_cx0[pf_h] <= 16'(cx0);
                        t_chy[pf_h] <= 8'(cy1 - cy0);
                        t_chw[pf_h] <= 8'(cx1 - cx0);
                    end else begin
                        t_cy0[pf_h] <= t_o0y[pf_h];
                        t_cx0[pf_h] <= t_o0x[pf_h];
                        t_chy[pf_h] <= t_oh[pf_h];
                        t_chw[pf_h] <= t_ow[pf_h];
                    end
                    // (mod AB: the products' low bits)
                    pf_pq <= ABL'(ABL'(t_o0y[pf_h]) * ABL'(L.out_w) + ABL'(t_o0x[pf_h]));
                    pf_s2 <= ABL'(ABL'(L.out_c) * ABL'(17'(L.out_w) - 17'(t_ow[pf_h]) + 17'd1));
                    pf_state <= PF_GEO3;
                end
                PF_GEO3: begin
                    logic signed [31:0] ix0, ixe, ixv0, ixv1;
                    logic [32:0] pix;        // the tile's first output pixel index
                    pf_iy0 <= 32'(t_cy0[pf_h]) * 32'(L.stride) - 32'(L.pad);
                    ix0 = 32'(t_cx0[pf_h]) * 32'(L.stride) - 32'(L.pad);
                    pf_ix0 <= ix0;
                    pf_ph <= 8'((32'(t_chy[pf_h]) - 32'd1) * 32'(L.stride) + 32'(L.k));
                    pf_pw <= 8'((32'(t_chw[pf_h]) - 32'd1) * 32'(L.stride) + 32'(L.k));
                    ixe = ix0 + (32'(t_chw[pf_h]) - 32'd1) * 32'(L.stride) + 32'(L.k);
                    ixv0 = (ix0 < 0) ? 32'sd0 : ix0;
                    ixv1 = (ixe > 32'(L.in_w)) ? 32'(L.in_w) : ixe;
                    pf_ixv0 <= 16'(ixv0);
                    pf_vw <= 18'(ixv1 - ixv0);
`ifndef SYNTHESIS
                    if (ixv1 - ixv0 != 32'(signed'(18'(ixv1 - ixv0))))
                        $error("dg_loader: patch row width %0d does not fit pf_vw", ixv1 - ixv0);
`endif
                    pf_lo <= 16'((ixv0 - ix0) * 32'(L.cin_st));
                    t_lo[pf_h] <= 16'((ixv0 - ix0) * 32'(L.cin_st));
                    t_hi[pf_h] <= 16'((ixv1 - ix0) * 32'(L.cin_st));
                    pf_vb <= IAW'(AB);
                    pf_bufptr <= '0;
                    pf_r <= 8'd0;
                    pf_c <= 8'd0;
                    pf_py <= 8'd0;
                    pf_px <= 8'd0;
                    pf_jl <= 8'd0;
                    pf_jge <= '1;
                    pf_pxl <= t_ow[pf_h] == 8'd1;
                    pf_ylast <= t_oh[pf_h] == 8'd1;
                    pf_pidx <= 8'd0;
                    pf_ends <= lane_ends(ABL'(L.res_abs[ABL-1:0] + ABL'(pf_pq) * ABL'(L.out_c)), pr_lov, pr_z, pr_one, pr_last);
                    // (the pixel index o0y * out_w + o0x < 2^33: a 33 x 16 product)
                    pix = 33'(32'(t_o0y[pf_h]) * 32'(L.out_w)) + 33'(t_o0x[pf_h]);
                    pf_pixaddr <= L.res_abs + 64'(pix) * 64'(L.out_c);
                    pf_state <= (t_res_only[pf_h] || L_no_mac) ? (L.residual ? PF_RES : PF_WAIT) : PF_GEO4;
                end
                PF_GEO4: begin
                    // address of patch row 0 (iy0 may be negative: rows outside the map are not read)
                    // (iy0 = cy0 * stride - pad, |iy0| < 2^19: a 20 x 33-bit signed product, sign-
                    // extended, is iy0 * in_row_bytes mod 2^64 as the 64-bit one; 2 DSP48E2)
                    pf_row_addr <= L.in_abs + 64'(ld_row_prod(20'(pf_iy0), L.in_row_bytes))
                                   + 64'(pf_ixv0) * 64'(L.cin_st);
                    pf_cb <= IAW'((pf_ix0 - 32'(pf_ixv0)) * 32'(L.cin_st));
                    // (the row's bytes from the registered width: no subtract in front of the
                    // product; first used in PF_ROWS and by the tile's patch beats)
                    pf_row_bytes <= 32'(pf_vw) * 32'(L.cin_st);           // (pf_vw sign-extended)
                    // (ceil(pw / k) <= 255: an 8 x 16 product)
                    dw_rb <= 32'(8'((32'(pf_pw) + DW_K - 1) / DW_K)) * 32'(dw_cst);
                    t_dwrb_r[pf_h] <= 32'(8'((32'(pf_pw) + DW_K - 1) / DW_K)) * 32'(dw_cst);
                    dw_c0 <= 8'(32'(pf_ixv0) - pf_ix0);
                    pf_dwk <= 8'd0;
                    pf_dwb <= pf_h ? DW_AW'(DW_HALF) : DW_AW'(0);
                    pf_iy <= pf_iy0;                                     // row 0 (even)
                    pf_rend <= pf_ph == 8'd0;                            // (pf_r = pf_c = 0)
                    pf_rl1 <= pf_ph == 8'd1;
                    pf_ph_m2 <= pf_ph - 8'd2;
                    pf_cend <= pf_pw == 8'd0;
                    pf_cl1 <= pf_pw == 8'd1;
                    pf_pw_m2 <= pf_pw - 8'd2;
                    pf_row_ok <= pf_iy0 >= 0 && pf_iy0 < 32'(L.in_h);
                    pf_state <= PF_ROWS;
                end
                PF_ROWS: begin
                    // one patch row (a read command) and one patch column per cycle
                    if (!pf_rend && (!pf_row_ok || pf_fire)) begin
                        row_ok[pf_h][PW'(pf_r)] <= pf_row_ok;
                        rowbase[pf_h][PW'(pf_r)] <= L.im2col ? pf_vb : pf_bufptr + IAW'(pf_row_off);
                        row_tb[pf_h][PW'(pf_r)] <= row_tb_q;                  // (row_ra = pf_iy)
                        row_tv[pf_h][PW'(pf_r)] <= pf_row_ok && row_tv_q;
                        if (pf_row_ok) pf_bufptr <= pf_bufptr + IAW'(32'(pf_row_beats) * AB);
                        pf_vb <= pf_vb + IAW'(L.pitch);
                        pf_r <= pf_r + 8'd1;
                        pf_rend <= pf_rl1;
                        pf_rl1 <= pf_r == pf_ph_m2;
                        pf_iy <= pf_iy + 32'sd1;
                        pf_row_ok <= pf_iy + 32'sd1 >= 0 && pf_iy + 32'sd1 < 32'(L.in_h)
                                     && !(pf_skip_odd && !pf_r[0]);
                        if (32'(pf_dwk) + 1 == DW_K) begin
                            pf_dwk <= 8'd0;
                            pf_dwb <= pf_dwb + DW_AW'(dw_rb);
                        end else pf_dwk <= pf_dwk + 8'd1;
                        pf_row_addr <= pf_row_addr + 64'(L.in_row_bytes);
                    end
                    if (!pf_cend) begin                              // (pf_c != pf_pw)
                        logic signed [31:0] ix;
                        ix = pf_ix0 + 32'(pf_c);
                        col_ok[pf_h][PW'(pf_c)] <= ix >= 0 && ix < 32'(L.in_w);
                        colbyte[pf_h][PW'(pf_c)] <= pf_cb;
                        pf_cb <= pf_cb + IAW'(L.cin_st);
                        col_t[pf_h][PW'(pf_c)] <= col_t_q;                    // (col_ra = ix)
                        col_tv[pf_h][PW'(pf_c)] <= ix >= 0 && ix < 32'(L.in_w) && col_tv_q;
                        pf_c <= pf_c + 8'd1;
                        pf_cend <= pf_cl1;
                        pf_cl1 <= pf_c == pf_pw_m2;
                    end
                    if ((pf_rend || (pf_rl1 && (!pf_row_ok || pf_fire))) && (pf_cend || pf_cl1))
                        pf_state <= L.residual ? PF_RES : PF_WAIT;
                end
                PF_RES: begin
                    logic [16:0] wstep;      // out_w - t_ow + 1 (t_ow <= out_w)
                    if (pf_fire) begin
                        if (pf_rlast) begin
                            pf_jl <= 8'd0;
                            pf_jge <= '1;
                            pf_pidx <= pf_pidx + 8'd1;
                            pf_ends <= lane_ends(pf_pixaddr[ABL-1:0] + (pf_pxl ? pf_s2 : pf_s1), pr_lov, pr_z, pr_one, pr_last);
                            pf_pxl <= pf_pxl ? t_ow[pf_h] == 8'd1 : pf_px + 8'd2 == t_ow[pf_h];
                            if (pf_pxl) begin                           // (pf_px + 1 == t_ow)
                                pf_px <= 8'd0;
                                pf_py <= pf_py + 8'd1;
                                pf_ylast <= pf_py + 8'd2 == t_oh[pf_h];
                                // (t_ow <= out_w: out_w - t_ow + 1 has 17 bits, a 16 x 17 product)
                                wstep = 17'(L.out_w) - 17'(t_ow[pf_h]) + 17'd1;
                                pf_pixaddr <= pf_pixaddr + 64'(L.out_c) * 64'(wstep);
                                if (pf_ylast) pf_state <= PF_WAIT;      // (pf_py + 1 == t_oh)
                            end else begin
                                pf_px <= pf_px + 8'd1;
                                pf_pixaddr <= pf_pixaddr + 64'(L.out_c);
                            end
                        end else begin
                            pf_jl <= pf_jh1;
                            pf_jge <= pf_below;
                        end
                    end
                end
                PF_WAIT: begin
`ifndef SYNTHESIS
                    if (pf_ilast != (pf_i + 16'd1 == L.n_seq))
                        $error("dg_loader: pf_ilast %0d stale (pf_i %0d, n_seq %0d)", pf_ilast, pf_i, L.n_seq);
`endif
                    // (a depthwise patch: also its last beat's stage A, written into the dw
                    // banks by stage B in the cycle full is set, as the patch banks; no push
                    // in PF_WAIT: the prefetcher requests only in PF_ROWS / PF_RES)
`ifndef SYNTHESIS
                    if (pend_push) $error("dg_loader: pending push in PF_WAIT");
`endif
                    if (!pend_valid && !dwa_v) begin
                        full[pf_h] <= 1'b1;
                        pf_h <= !pf_h;
                        if (pf_ilast) begin                 // (pf_i + 1 == n_seq)
                            pf_i <= 16'd0;
                            pf_g <= pf_g + 16'd1;
                        end else pf_i <= pf_i + 16'd1;
                        pf_state <= PF_IDLE;
                    end
                end
                default: pf_state <= PF_IDLE;
            endcase
            // receive side (in the run every beat of the read master is the prefetcher's: the
            // pending FIFO's head command)
            if (pend_valid && rd_valid) begin
                if (!pend_out[PEND_W-1]) begin
                    logic [IAW-1:0] a;
                    a = IAW'(32'(pend_out[32]) * IHALF + 32'(pend_out[31:0]) + 32'(pr_beat) * AB);
                    // byte l to address a + l (a is beat-aligned but for im2col rows): bank b
                    // takes byte (b - a) mod NB (if < AB) at row a / NB, + 1 below a's bank
                    // (a rotation and one shared row, as the read side; no per-byte scatter)
                    for (int b = 0; b < NB; b++) begin
                        logic [NBL-1:0] rel;
                        rel = NBL'(32'(b) - 32'(a));
                        ib_we[b] <= 32'(rel) < AB;
                        ib_waddr[b] <= $clog2(IDEPTH)'((32'(a) >> NBL) + ((NBL'(b) < a[NBL-1:0]) ? 1 : 0));
                        ib_wdata[b] <= rd_data[(32'(rel) % AB) * 8 +: 8];
                    end
                    pr_beat <= rd_last ? 16'd0 : pr_beat + 16'd1;
                    pr_first <= rd_last;
                end else begin
                    logic [7:0] p, jl, jh, off;
                    p = pend_out[31:24];
                    jl = pend_out[23:16];
                    jh = pend_out[15:8];
                    off = pend_out[7:0];
                    rb_waddr <= $clog2(2*RPIX)'(32'(pend_out[32]) * RPIX + 32'(p));
                    // (pr_lo: lane l's channel mod AB, settled: the tile's group is unchanged until
                    // its reads are received)
                    for (int l = 0; l < DG_TM; l++) begin
                        logic [ABL-1:0] bo;
                        bo = ABL'(32'(off) + 32'(pr_lo[l]));
`ifndef SYNTHESIS
                        if (pr_lo[l] != bk_ch[pf_g[0]][l][ABL-1:0])
                            $error("dg_loader: residual receive: lane %0d channel copy stale", l);
`endif
                        rb_we[l] <= 8'(l) >= jl && 8'(l) <= jh;
                        rb_wdata[l] <= rd_data[32'(bo) * 8 +: 8];
                    end
                end
            end
        end


        if (tile_done) full[cp_h] <= 1'b0;
        // (- a beat requested, + a beat popped; a beat moving from "requested" into the FIFO
        // (push, and the read master's ready) leaves it unchanged, as the two counts it sums)
        // (the issue's subtract formed beside the other terms, picked by ld_fire_c last: the
        // credit check's fan-out reaches ldf_free through one select)
        ldf_free <= ld_fire_c ? ldf_base - LFW'(sp_beats) : ldf_base;
        if (rst) begin
            // a PL reset in a run: no loader or prefetch left busy (the next run_init
            // starts clean; ld_fire is gated by run)
            ld_busy <= 1'b0;
            bk_lanes <= 2'b00;
            bk_ready <= 2'b00;
            sp_phase <= 2'd0;
            pf_state <= PF_IDLE;
            pf_i <= 16'd0;
            pf_g <= 16'd0;
            pf_h <= 1'b0;
            full <= 2'b00;
            pr_beat <= 16'd0;
            pr_first <= 1'b1;
            ldf_free <= LFW'(LDF_DEPTH);
        end
    end

    // the compute's tile-start bank match as a register (the compute's start enable then
    // begins at flip-flops): t_bk_ok[h] equals bk_ready[t_g[h][0]] && bk_grp[t_g[h][0]] ==
    // t_g[h] in every cycle, set from those registers' next values. bk_grp of a bank changes
    // only with its bk_ready cleared (run_init, ld_start), so the compare may use its current
    // value; a half given a tile (PF_IDLE) gets the group its bank holds (pf_g).
    wire ld_done = ld_busy && sp_phase == 2'd2 && !spf_valid;
    wire pf_take = pf_active && pf_state == PF_IDLE && pf_g != L.G && !full[pf_h]
                   && bk_lanes[pf_g[0]] && bk_grp[pf_g[0]] == pf_g;
    always_ff @(posedge clk) begin
        logic [1:0] nr;
        for (int b = 0; b < 2; b++)
            nr[b] = (rst || run_init || (ld_start && 32'(ld_b) == b)) ? 1'b0
                    : (ld_done && 32'(ld_b) == b) ? 1'b1 : bk_ready[b];
        for (int h = 0; h < 2; h++)
            t_bk_ok[h] <= (pf_take && 32'(pf_h) == h) ? nr[pf_g[0]]
                          : nr[t_g[h][0]] && bk_grp[t_g[h][0]] == t_g[h];
    end
`ifndef SYNTHESIS
    /* verilator lint_off PROCASSINIT */
    logic bk_ok_armed = 1'b0;
    /* verilator lint_on PROCASSINIT */
    always_ff @(posedge clk) begin
        if (run_init) bk_ok_armed <= 1'b1;
        for (int h = 0; h < 2; h++)
            if (bk_ok_armed && t_bk_ok[h] != (bk_ready[t_g[h][0]] && bk_grp[t_g[h][0]] == t_g[h]))
                $error("dg_loader: t_bk_ok[%0d] %0d, bank match %0d", h, t_bk_ok[h],
                       bk_ready[t_g[h][0]] && bk_grp[t_g[h][0]] == t_g[h]);
    end
`endif

    // read-data ready (in the run, by owner) and the loader's consume step
    always_comb begin
        logic [1:0] kind;
        logic [31:0] k, kk, left_span, left_beat;
        logic [31:0] ls0, lb0, ls1, lb1;
        logic [ABL-1:0] rot_d;
        logic [KW-1:0] s0;
        rd_ready = 1'b0;
        spf_pop = 1'b0;
        ldf_pop = 1'b0;
        pend_pop = 1'b0;
        pos = '0;
        last_byte = 1'b0;
        ld_left = 16'd0;
        if (run) begin
            rd_ready = pend_valid;
            pend_pop = pend_valid && rd_valid && rd_last;
        end
        ld_k = 8'd1;
        ld_byte0 = 8'd0;
        rot_d = '0;
        s0 = '0;
        for (int t = 0; t < KMAX; t++) ld_rot[t] = 8'd0;
        ld_n = sc_wocf ? sc_b : sc_nptr;
        kind = '0;
        k = 32'd0;
        kk = 32'd0;
        left_span = 32'd0;
        left_beat = 32'd0;
        ls0 = 32'd0;
        lb0 = 32'd0;
        ls1 = 32'd0;
        lb1 = 32'd0;
        if (ld_consume) begin
            kind = sc_kind;
            pos = sc_started ? sc_pos : (ABL+1)'(spf_out[23:16]);
            // (bytes left in the chunk: its byte count at its first step, then counted in
            // sc_left; no subtract from the span FIFO's output in the step's path)
            left_span = sc_started ? 32'(sc_left) : 32'(spf_out[15:0]);
            left_beat = AB - 32'(pos);
            kk = 1;
            if (kind == 2'(SP_WIC)) kk = KMAX;
            else if (kind == 2'(SP_WOC) && sc_wocf) kk = DG_TN - (32'(sc_b) % DG_TN);
            k = kk;
            if (k > left_span) k = left_span;
            if (k > left_beat) k = left_beat;
            ld_k = 8'(k);
            ld_byte0 = ldf_data[32'(pos) * 8 +: 8];
            // byte r of the step (beat byte pos + r) goes to lane l0 + r, slot t0 (ic layout: l0 =
            // sc_b, t0 = si mod Tn) or lane l0, slot t0 + r (oc layout: l0 = si mod Tm, t0 = ld_n
            // mod Tn): to index (s0 + r) mod KMAX of the rotated beat, s0 = (l0 + t0) mod KMAX
            // (the step's bytes never wrap the beat: index j takes beat byte pos + (j - s0) mod
            // KMAX, a rotation by pos - s0, or by pos - s0 + KMAX below s0 when KMAX is not a
            // multiple of AB)
            s0 = KW'((kind == 2'(SP_WIC)) ? 32'(sc_b) + 32'(spf_out[SPF_W-4 -: 16]) % DG_TN
                                         : 32'(spf_out[SPF_W-4 -: 16]) % DG_TM + 32'(ld_n) % DG_TN);
            rot_d = ABL'(32'(pos) - 32'(s0));
            for (int j = 0; j < KMAX; j++)
                if (KMAX % AB == 0 || 32'(j) >= 32'(s0)) ld_rot[j] = ldf_data[32'(ABL'(32'(rot_d) + j)) * 8 +: 8];
                else ld_rot[j] = ldf_data[32'(ABL'(32'(rot_d) + KMAX + j)) * 8 +: 8];
            // (k = min(kk, left_span, left_beat) is left_span iff left_span is at most both, and
            // reaches the beat's end iff left_beat is: two compares in parallel, not after the min;
            // each for both sources of left_span and pos (sc_started: the step's registers, else
            // the span FIFO's head), picked by sc_started after the compares)
            begin
                ls0 = 32'(spf_out[15:0]);
                lb0 = AB - 32'((ABL+1)'(spf_out[23:16]));
                ls1 = 32'(sc_left);
                lb1 = AB - 32'(sc_pos);
                last_byte = sc_started ? ls1 <= kk && ls1 <= lb1 : ls0 <= kk && ls0 <= lb0;   // (k == left_span)
                ldf_pop = sc_started ? ls1 <= kk && ls1 <= lb1 || (lb1 <= kk && lb1 <= ls1)
                                     : ls0 <= kk && ls0 <= lb0 || (lb0 <= kk && lb0 <= ls0);   // (pos + k == AB)
            end
            ld_left = 16'(left_span - k);
            spf_pop = last_byte;
        end

    end
`ifndef SYNTHESIS
    // the weight write's data against the former per-byte select (ic layout: lane m takes
    // byte m of the beat rotated by pos - sc_b, oc layout: slot t byte t of it rotated by
    // pos - ld_n mod Tn)
    logic [7:0] wb_ref [KMAX];
    logic wb_ref_ic;
    always_ff @(posedge clk) begin
        if (ld_busy && ld_consume) begin
            for (int t = 0; t < KMAX; t++)
                wb_ref[t] <= ldf_data[32'(ABL'(32'(pos) - ((sc_kind == 2'(SP_WIC)) ? 32'(sc_b) : 32'(ld_n) % DG_TN) + t)) * 8 +: 8];
            wb_ref_ic <= sc_kind == 2'(SP_WIC);
        end
        for (int m = 0; m < DG_TM; m++)
            for (int t = 0; t < DG_TN; t++)
                if (wb_lane[m] && wb_slot[t] && wb_rot[(m + t) % KMAX] != (wb_ref_ic ? wb_ref[m] : wb_ref[t]))
                    $error("dg_loader: weight write lane %0d slot %0d: %0d, want %0d", m, t,
                           wb_rot[(m + t) % KMAX], wb_ref_ic ? wb_ref[m] : wb_ref[t]);
    end
    // the write enables against the ones formed from k (ld_k)
    always_ff @(posedge clk)
        if (wb_lane != wb_lane_ref || (wb_lane != '0 && wb_slot != wb_slot_ref))
            $error("dg_loader: weight write enables lanes %b slots %b, want %b %b",
                   wb_lane, wb_slot, wb_lane_ref, wb_slot_ref);
    // the consume step's parallel last-byte / beat-end compares against k (ld_k)
    always_ff @(posedge clk)
        if (ld_consume && (sc_wocf != (!L.in_ch_gated || l_dw) || last_byte != (32'(ld_k) == (sc_started ? 32'(sc_left) : 32'(spf_out[15:0])))
                           || ldf_pop != (last_byte || 32'(pos) + 32'(ld_k) == AB)))
            $error("dg_loader: consume step last_byte %0d / ldf_pop %0d differ from k %0d", last_byte, ldf_pop, ld_k);
`endif
    wire unused_ok = &{1'b0, L, spf_count, pend_count, ldf_count, bk_lanes, pf_lo, dw_rb};
endmodule
`default_nettype wire
