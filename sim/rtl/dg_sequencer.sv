`default_nettype none
// dg_sequencer: the engine's layer sequencer (one job: what runs, and whether it may).
//
// Per engine start: check LAYER_COUNT; per record: fetch the 24 words over the read master
// and dispatch on the op (dgfpga.contract.program): OP_GATE / OP_GATE2 / OP_HEAD records run
// on the gate unit (dg_gate: `g_start`, wait for `g_done`; a gate-2 record without a gate
// record before it in this start is BAD_OP); a conv descriptor is checked
// (dg_desc_check), with `from_gate` turned into the effective descriptor E (the last
// gate's counts and, after a gate-2 record, its nc2: program.effective_descriptor; skipped
// when E is None) and checked again,
// latched as a dg_layer_t (fields decoded through the generated
// DG_DESC_<FIELD>_WORD/_LSB/_WIDTH), its work lists fetched and checked (u16 tile /
// channel lists, the u32 tile bitmap), the zero-halo tables filled, then the run started
// (`run_init` pulse, `run` while ST_RUN) until the other agents' `layer_done`.
// Any fault sets STATUS (regmap fields) and ends the start; CYCLES counts from ap_start;
// The per-record cycle log (entry i = the cycles of record i, fetch to drain, which the head
// writes) is a RAM of rows of one AXI beat (AB/4 entries), read synchronously: row `cyc_ra`
// in `cyc_q` a cycle later.
module dg_sequencer
    import dg_pkg::*;
(
    input  wire                         clk,
    input  wire                         rst,
    // s_axi_control arguments and outputs
    input  wire                         ap_start,
    input  wire [63:0]                  a_program,
    input  wire [31:0]                  a_layer_count,
    input  wire [63:0]                  a_fmap_base,
    input  wire [31:0]                  a_fmap_bytes,
    input  wire [63:0]                  a_weight_base,
    input  wire [31:0]                  a_weight_bytes,
    input  wire [63:0]                  a_work_base,
    input  wire [31:0]                  a_work_bytes,
    input  wire [63:0]                  a_sums_base,
    input  wire [31:0]                  a_sums_bytes,
    input  wire [31:0]                  a_run_flags,
    output logic [31:0]                 status_reg,    // STATUS value
    output logic [63:0]                 cycle_cnt,     // CYCLES value
    output wire                         idle,          // ap_idle
    output wire                         done,          // ap_done / ap_ready / ap_vld pulse
    // read master: descriptor and work-list commands (never while `run`)
    output logic                        rcmd_valid,
    output logic [63:0]                 rcmd_addr,
    output logic [23:0]                 rcmd_beats,
    input  wire                         rcmd_ready,
    input  wire [DG_AXI_DATA_BITS-1:0]  rd_data,
    input  wire                         rd_valid,
    input  wire                         rd_last,
    output logic                        rd_ready,
    input  wire                         rd_idle,
    input  wire                         wr_idle,
    input  wire                         rd_err,
    input  wire                         wr_err,
    output logic                        err_clear,
    // the layer and its work
    output dg_layer_t                   L,
    output wire                         run,           // the agents run the layer
    output wire                         run_init,      // one cycle before: reset run state
    input  wire                         layer_done,    // all agents idle, every group written
    // work lists and zero-halo tables: distributed RAM written here before the run, read by
    // the loader through asynchronous ports (address in, entry out in the same cycle)
    input  wire  [I_MAX_TILES-1:0]      tl_ra,         // tile list entry read
    output wire  [15:0]                 tl_q,
    input  wire  [I_MAX_TILES-1:0]      rl_ra,         // residual-only tile list entry read
    output wire  [15:0]                 rl_q,
    // channel lists: one checked entry per cycle to the loader's list memories (dg_loader
    // holds them in block RAM; nothing here is sized by the channel limits)
    output logic [1:0]                  ch_we,         // [0] out-channel list, [1] in-channel list
    output logic [15:0]                 ch_idx,        // entry index
    output logic [15:0]                 ch_val,        // channel id
    output logic [DG_MAX_TILES-1:0]     bitmap,
    // zero-halo tables: input row -> (tile row * grid_w, inside the grid), column -> tile column
    input  wire  [I_MAX_HEIGHT-1:0]     row_ra,        // row table entry read
    output wire  [15:0]                 row_tb_q,
    output wire                         row_tv_q,
    input  wire  [I_MAX_WIDTH-1:0]      col_ra,        // column table entry read
    output wire  [7:0]                  col_t_q,
    output wire                         col_tv_q,
    // gate / head unit
    output logic                        g_start,
    output logic                        g_is_head,
    output wire [DG_DESC_WORDS*32-1:0]  g_rec,
    output wire                         g_dense,
    input  wire                         g_done,
    input  wire [7:0]                   g_err_code,
    input  wire [15:0]                  g_err_entry,
    input  wire [15:0]                  g_nt,
    input  wire [15:0]                  g_nc,
    input  wire [15:0]                  g_nc2,
    input  wire [23:0]                  cyc_ra,        // cycle-log row (AXI beat) read next
    output wire [DG_AXI_DATA_BITS-1:0]  cyc_q,         // row cyc_ra of the cycle before
    output wire [31:0]                  rec_cycles
);
`include "dg_fields.svh"
    localparam int DESC_BEATS = (DG_DESC_BYTES + AB - 1) / AB + 1;

    // STATUS word (regmap field positions)
    function automatic logic [31:0] status_value(input logic [7:0] code, input logic [7:0] lay,
                                                 input logic [15:0] entry);
        logic [31:0] v;
        v = '0;
        `DG_REG_FIELD(v, STATUS, CODE) = DG_REG_STATUS_CODE_WIDTH'(code);
        `DG_REG_FIELD(v, STATUS, LAYER) = DG_REG_STATUS_LAYER_WIDTH'(lay);
        `DG_REG_FIELD(v, STATUS, ENTRY) = DG_REG_STATUS_ENTRY_WIDTH'(entry);
        return v;
    endfunction

    typedef enum logic [4:0] {
        ST_IDLE, ST_START, ST_DESC_REQ, ST_DESC_RX, ST_ALIGN, ST_CHECK, ST_CHECK2, ST_LIST_SEL,
        ST_LIST_REQ, ST_LIST_RX, ST_LIST_END, ST_HALO, ST_RUN, ST_LAYER_END,
        ST_ERR, ST_DONE, ST_GATE
    } state_t;
    state_t state;
    // `st`: the state one-hot (st[s] == (state == s)), written with it (`GO`): the dispatch
    // and the per-state enables decode no state bits (issue 16: <= 8 LUT levels)
    localparam int NST = 32'(ST_GATE) + 1;
    logic [NST-1:0] st;
`define GO(s) begin state <= s; st <= NST'(1) << s; end
    logic [7:0] layer;
    logic rec_last;                     // layer + 1 == a_layer_count (the start's last record)
    logic rec_last_nx;                  // layer + 2 == a_layer_count (registered: the next one's)
    logic lc_big, lc_zero, lc_one;      // a_layer_count > DG_MAX_LAYERS / == 0 / == 1, registered
                                        // (the argument is stable from ap_start: read in ST_START)

    // descriptor: the record aligned into `desc` (the register the checker, the latch of L and
    // the gate unit read) as its beats arrive. The record starts at byte `desc_off` of its
    // first beat; each beat is rotated down by desc_off bytes (`desc_rot`), so rotated byte r
    // holds record byte q*AB + r of beat q (r < AB - desc_off) or of beat q + 1 (r >= AB -
    // desc_off): every record byte takes one fixed rotated byte, written when its beat
    // arrives (`desc_hi`, `desc_boh`), instead of a shift of all beats by desc_off bytes.
    // The PROGRAM base is AXI-aligned (docs/register_map.md), so a record starts at a multiple
    // of RG bytes in its beat (RG: the largest power of two <= AB dividing the record size):
    // the offset's bits below RG are 0 by contract and not read (RG = AB up to 32-byte beats:
    // no rotation at all)
    function automatic int rec_align();
        int p;
        p = 1;
        for (int i = 1; i <= ABL; i++) if (DG_DESC_BYTES % (1 << i) == 0) p = 1 << i;
        return p;
    endfunction
    localparam int RG = rec_align();
    logic [63:0] desc_addr;             // byte address of the current record (a counter)
    wire [ABL-1:0] desc_a_off = desc_addr[ABL-1:0] & ABL'(~(RG - 1));   // its offset in the beat
    logic [ABL:0] desc_off;
    logic [AB-1:0] desc_hi;             // byte r >= AB - desc_off (from the next beat)
    logic [DESC_BEATS:0] desc_boh;      // one-hot of the beat being received
    wire [AB*8-1:0] desc_rot = (AB*8)'({rd_data, rd_data} >> (32'(desc_off) * 8));
    logic [DG_DESC_WORDS*32-1:0] desc;
    // the record's kind, registered with `desc` in ST_ALIGN (from the aligned record), so the
    // dispatch in ST_CHECK compares no descriptor field (issue 16: <= 8 LUT levels)
    logic r_bad_magic;                  // magic or version wrong
    logic r_gate, r_head, r_gate2;      // OP_GATE / OP_HEAD / OP_GATE2
    logic r_bad_op;                     // none of those and neither OP_CONV nor OP_DWCONV
                                        // (OP_DWCONV only with DG_DEPTHWISE: else an unknown op)
    logic r_from_gate;                  // FROM_GATE
    // from_gate: the effective descriptor E (program.effective_descriptor) under the last
    // gate's counts; `use_e` marks `desc` as E (written over the record: checked and latched)
    logic g_seen;                       // a gate record ran in this start
    logic [15:0] g_nt_r, g_nc_r;        // its active tiles / channels
    logic        g2_seen;               // a gate-2 record ran after it (cleared by a gate record)
    logic [15:0] g_nc2_r;               // its active channels (mask_c2)
    logic        g_is_g2;               // the gate unit runs a gate-2 record
    // program.effective_descriptor: an out-channel-gated layer outputs nc2 after a gate-2
    // record (conv2; it reads nc), a layer gated on its input only reads nc2 (conv3)
    wire [15:0] e_n_out = g2_seen ? g_nc2_r : g_nc_r;
    wire [15:0] e_n_in = (g2_seen && `DG_DESC(desc, IN_CH_GATED) && !`DG_DESC(desc, OUT_CH_GATED))
                         ? g_nc2_r : g_nc_r;
    logic use_e;
    logic [31:0] rec_start;
    wire [DG_DESC_WORDS*32-1:0] desc_chk = desc;
    logic g_nt_z, g_nc_z, g_nc2_z;      // g_nt_r / g_nc_r / g_nc2_r == 0 (registered with them)
    logic [15:0] e_nres;                // max(n_tiles - g_nt_r, 0): E's residual-only tiles
    logic e_nres_z;                     // n_tiles <= g_nt_r
    wire e_skip = (`DG_DESC(desc, OUT_CH_GATED) && (g_nt_z || (g2_seen ? g_nc2_z : g_nc_z)))
                  || (`DG_DESC(desc, IN_PLACE) && g_nt_z);
    // (nres = max(n - t, 0) for n = grid_h * grid_w, t = the gate's tiles; nres_z: n <= t)
    function automatic logic [DG_DESC_WORDS*32-1:0] effective(input logic [DG_DESC_WORDS*32-1:0] d,
                                                              input logic [15:0] nres, input logic nres_z,
                                                              input logic [15:0] t,
                                                              input logic [15:0] co, input logic [15:0] ci);
        logic [DG_DESC_WORDS*32-1:0] e;
        e = d;
        `DG_DESC(e, FROM_GATE) = '0;
        `DG_DESC(e, N_ACTIVE_TILES) = DG_DESC_N_ACTIVE_TILES_WIDTH'(t);
        if (`DG_DESC(d, OUT_CH_GATED)) `DG_DESC(e, N_ACTIVE_OUT) = DG_DESC_N_ACTIVE_OUT_WIDTH'(co);
        if (`DG_DESC(d, IN_CH_GATED)) `DG_DESC(e, N_ACTIVE_IN) = DG_DESC_N_ACTIVE_IN_WIDTH'(ci);
        if (`DG_DESC(d, RESIDUAL) && !`DG_DESC(d, IN_PLACE)) begin
            `DG_DESC(e, N_RES_TILES) = DG_DESC_N_RES_TILES_WIDTH'(nres);
            if (nres_z) `DG_DESC(e, RES_TILE_LIST_OFFSET) = '0;
        end
        return e;
    endfunction
    // the checker is pipelined: chk_start (one cycle, registered) after `desc` changes, the
    // result with chk_done some twenty cycles later; it also returns the exact products the
    // layer needs (ST_CHECK2), so the sequencer has no multiplier of its own
    logic chk_start;
    wire chk_done;
    wire chk_wait = chk_start || !chk_done;
    wire [7:0] chk_code;
    wire [15:0] chk_entry;
    wire [15:0] chk_n_tiles;
    wire [7:0] chk_kk;
    wire [31:0] chk_kc, chk_kkc, chk_pitch, chk_in_row;
    dg_desc_check chk (
        .clk(clk), .start(chk_start), .desc(desc_chk), .fmap_bytes(a_fmap_bytes),
        .weight_bytes(a_weight_bytes), .work_bytes(a_work_bytes), .sums_bytes(a_sums_bytes),
        .done(chk_done), .err_code(chk_code), .err_entry(chk_entry), .n_tiles(chk_n_tiles),
        .kk(chk_kk), .kc(chk_kc), .kkc(chk_kkc), .i2c_pitch(chk_pitch), .in_row_bytes(chk_in_row));
    // the layer values ST_CHECK2 latches, registered from the checker's products (settled
    // cycles before chk_done) and from L (latched in ST_CHECK), so no divider table, adder
    // chain or compare sits between ST_CHECK2's registers (issue 16)
    logic [15:0] d_qa, d_ra, d_dq, d_s_dw, d_s_conv, d_kp;
    logic [15:0] d_N, d_G, d_SG, d_conv_h, d_conv_w, d_n_seq, d_cin_st, d_cout_st;
    logic        d_no_run;          // n_seq == 0 or G == 0 (checked in ST_HALO, after CHECK2)
    logic [15:0] d_bm_n;            // the bitmap's bits, BMW * ceil(n_tiles / BMW)
    logic [15:0] n_tiles_r;             // grid_h * grid_w of the layer (ST_CHECK2)
    logic [15:0] n_tiles_m1;            // n_tiles_r - 1 (registered: the bitmap's last tile)
    // TN / kc (kc = 0: TN; kc > TN: 0) and TN - (TN / kc) * kc, as tables of the TN + 1 small
    // values (no divider, no multiplier)
    // (kc_big: kc >= 2 TN, registered; the tables are indexed by kc's low TNL + 1 bits)
    function automatic logic [15:0] i2c_qa_of(input logic kc_big, input logic [TNL:0] lo);
        logic [15:0] q;
        q = 16'd0;
        if (!kc_big) begin
            if (lo == 0) q = 16'(DG_TN);
            for (int d = 1; d <= DG_TN; d++) if (32'(lo) == d) q = 16'(DG_TN / d);
        end
        return q;
    endfunction
    function automatic logic [15:0] i2c_ra_of(input logic kc_big, input logic [TNL:0] lo);
        logic [15:0] r;
        r = 16'(DG_TN);
        if (!kc_big) for (int d = 1; d <= DG_TN; d++) if (32'(lo) == d) r = 16'(DG_TN % d);
        return r;
    endfunction
    logic kc_big;                       // chk_kc >= 2 TN
    logic [TNL:0] kc_lo;                // chk_kc mod 2 TN

    // work lists
    // Stored narrow (issue 16: the FF count): a valid tile index is < n_tiles <= DG_MAX_TILES
    // (a layer with a larger entry ends in TILE_RANGE and never runs), and the zero-halo
    // tables' tile bases and columns are only ever used as bitmap indices modulo
    // 2^I_MAX_TILES (dg_compute: bitmap[I_MAX_TILES'(row_tb + col_t)]), so their upper bits
    // are zero on the ports
    // Memories with one write port (here, one entry per cycle) and one asynchronous read port
    // (the loader's address): distributed RAM (issue 16: were registers, 8 128 FF at ultra96,
    // with 256:1 / 224:1 read muxes in the loader). The halo tables hold {inside, base}.
    localparam int CTW = (I_MAX_TILES < 8) ? I_MAX_TILES : 8;      // col_tile_tab bits held
    (* ram_style = "distributed" *) logic [I_MAX_TILES-1:0] tl_mem [DG_MAX_TILES];
    (* ram_style = "distributed" *) logic [I_MAX_TILES-1:0] rl_mem [DG_MAX_TILES];
    (* ram_style = "distributed" *) logic [I_MAX_TILES:0]   rt_mem [DG_MAX_HEIGHT];
    (* ram_style = "distributed" *) logic [CTW:0]           ct_mem [DG_MAX_WIDTH];
    assign tl_q = 16'(tl_mem[tl_ra]);
    assign rl_q = 16'(rl_mem[rl_ra]);
    assign row_tb_q = 16'(rt_mem[row_ra][I_MAX_TILES-1:0]);
    assign row_tv_q = rt_mem[row_ra][I_MAX_TILES];
    assign col_t_q = 8'(ct_mem[col_ra][CTW-1:0]);
    assign col_tv_q = ct_mem[col_ra][CTW];
    // the active-tile flags (tile t is in the tile list; all set for an ungated layer): a
    // distributed RAM of AFN words of AFW flags, not DG_MAX_TILES flip-flops with a decoded
    // write each and two 1-of-DG_MAX_TILES reads. A tile-list entry sets its flag by a
    // read-modify-write of its word (async read, the write at the edge); the words are
    // cleared one per cycle while the checker runs (ST_CHECK: DG_DESC_CHECK_CYCLES >= AFN
    // consecutive cycles before every layer's lists); an ungated layer's flags read as 1.
    localparam int AFT = 1 << I_MAX_TILES;
    localparam int AFN = (AFT > 16) ? 16 : AFT;
    localparam int AFW = AFT / AFN;
    localparam int AFNL = (AFN > 1) ? $clog2(AFN) : 1;
    (* ram_style = "distributed" *) logic [AFW-1:0] af_mem [AFN];
    logic [AFNL-1:0] af_ci;                 // the word ST_CHECK clears
    // the bitmap check's flag, read a step ahead: af_q = flag[list_e], af_n = list_e + 1
    // (registered reads at a counter, not a shift of all the flags per bit)
    logic af_q;
    logic [I_MAX_TILES-1:0] af_n;
    // list kinds: 0 tiles, 1 res tiles, 2 out ch, 3 in ch, 4 bitmap
    logic [4:0] lk_mask;        // the kinds still to fetch: after the current one (after CHECK2: all)
    logic [15:0] list_e, list_limit;
    logic [DG_AXI_DATA_BITS-1:0] list_beat;
    logic list_have;
    logic [15:0] list_slot;
    logic [15:0] list_prev;
    logic list_lastf;           // list_e + 1 == the list's entries
    logic [15:0] list_n_m2;     // the list's entries - 2 (list_lastf of the next entry: list_e == list_n_m2)
    logic list_first;           // list_e == 0
    // registered in ST_LIST_SEL / per entry, so ST_LIST_RX decodes no count (issue 16)
    logic lk_bm, lk_tile, lk_res;   // the list is the bitmap / the tile list / the res tile list
    logic [1:0] lk_we;              // ch_we of an entry of this list (out / in channels)
    logic slot_lastf;               // the entry is the beat's last (list_slot == per beat - 1)
    logic bm_past;                  // bitmap: list_e >= n_tiles_r (bits past the grid)
    // per list kind (0 tiles .. 4 bitmap): needed, entries, WORK offset (registered from L)
    logic [4:0] nd;
    logic [15:0] nd_n [5];
    logic [15:0] nd_m2 [5];     // nd_n - 2, and nd_n == 1 (list_n_m2 / list_lastf of a list's
    logic [4:0] nd_one;         //   first entry: no subtract or compare after the select)
    logic [31:0] nd_off [5];
    logic [15:0] halo_hmax;     // max(in_h, in_w): the halo tables' rows
    logic [7:0] halo_side_m1;   // halo_side - 1
    logic halo_endf;            // halo_i + 1 >= halo_hmax (the last halo step)
    logic range_err, order_err, inter_err;
    logic [15:0] range_at, order_at;
    // the list's range / order error codes, registered with its kind in ST_LIST_SEL: ST_LIST_END
    // selects registered codes (no kind compare on the path into err_code)
    logic [7:0] lk_rcode, lk_ocode;
    // halo table fill
    logic [15:0] halo_i;
    logic [7:0]  halo_qr, halo_rr, halo_qc, halo_rc;
    logic [15:0] halo_rowbase;           // halo_qr * grid_w, a running sum
    // input pixels per tile side: the tile scaled by the stride (formats: zero_halo)
    wire  [7:0]  halo_side = 8'(L.tile) << (L.stride == 2'd2 ? 1 : 0);

    // error reporting
    // (read only in ST_ERR, which holds them: every state that can fail writes its code and
    // entry in each of its cycles, not under its failing condition, so no condition or
    // priority is on their paths; every `GO(ST_ERR)` leaves a state that wrote them)
    logic [7:0] err_code;
    logic [15:0] err_entry;
    // ST_CHECK's: the record's magic / op before the checker's, then from_gate without a gate
    logic [7:0] ck_code;
    logic [15:0] ck_entry;
    always_comb begin
        if (!use_e && r_bad_magic) begin
            ck_code = DG_ERR_BAD_MAGIC;
            ck_entry = 16'(DG_DESC_MAGIC_WORD);
        end else if (!use_e && (r_gate || r_head || r_gate2 || r_bad_op)) begin
            ck_code = DG_ERR_BAD_OP;
            ck_entry = 16'(DG_DESC_OP_WORD);
        end else if (chk_code != 8'd0) begin
            ck_code = chk_code;
            ck_entry = chk_entry;
        end else begin
            ck_code = DG_DESC_FROM_GATE_ERR;
            ck_entry = 16'(DG_DESC_FROM_GATE_WORD);
        end
    end

    // list command (chosen in ST_LIST_SEL, registered, issued from ST_LIST_REQ)
    logic [63:0] list_cmd_addr;
    logic [23:0] list_cmd_beats;
    logic [2:0] list_next;        // next list kind needed (5 = none)
    logic [15:0] list_next_n;
    logic [15:0] list_next_m2;    // its entries - 2 (nd_m2)
    logic list_next_one;          // its entries == 1 (nd_one)
    logic [31:0] list_next_off;

    // the layer is depthwise (the constant gates it: no depthwise logic without the hardware)
    wire l_dw = DG_DEPTHWISE && L.dw;
    always_ff @(posedge clk) begin
        nd[0] <= L.tile_gated && L.n_act != 0;
        nd[1] <= L.n_res != 0;
        nd[2] <= L.out_ch_gated && L.n_out != 0;
        // (a depthwise layer has no in-channel list: its out-channel list is both)
        nd[3] <= L.in_ch_gated && !l_dw && L.n_in != 0;
        nd[4] <= L.zero_halo;
        nd_n <= '{L.n_act, L.n_res, L.n_out, L.n_in, d_bm_n};
        for (int kind = 0; kind < 5; kind++) begin
            nd_m2[kind] <= nd_n[kind] - 16'd2;
            nd_one[kind] <= nd_n[kind] == 16'd1;
        end
        nd_off <= '{L.tl_off, L.rl_off, L.ol_off, L.il_off, L.bm_off};
        d_bm_n <= 16'(BMW * ((32'(chk_n_tiles) + BMW - 1) / BMW));
        halo_hmax <= (L.in_h > L.in_w) ? 16'(L.in_h) : 16'(L.in_w);
        halo_side_m1 <= halo_side - 8'd1;
        kc_big <= chk_kc[31:TNL+1] != '0;
        kc_lo <= chk_kc[TNL:0];
        d_qa <= i2c_qa_of(kc_big, kc_lo);
        d_ra <= i2c_ra_of(kc_big, kc_lo);             // TN - qa * kc
        d_dq <= 16'((chk_pitch - chk_kc) >> NBL);
        d_s_dw <= 16'((32'(chk_kk) + DG_TN - 1) >> TNL);
        d_s_conv <= 16'((chk_kkc + DG_TN - 1) >> TNL);
        d_kp <= 16'(((chk_kkc + DG_TN - 1) >> TNL) << TNL);
        // (depthwise: one tap of TM lanes per step, no n-groups)
        d_N <= (L.n_in == 0 || l_dw) ? 16'd1 : 16'((32'(L.n_in) + DG_TN - 1) >> TNL);
        // depthwise: ONE loader group (every active channel's params and rows on chip), its
        // SG m-groups run per tile on the tile's one patch (dg_compute)
        d_G <= (l_dw && L.n_out != 0) ? 16'd1 : 16'((32'(L.n_out) + DG_TM - 1) / DG_TM);
        d_SG <= l_dw ? 16'((32'(L.n_out) + DG_TM - 1) / DG_TM) : 16'd1;
        d_conv_h <= 16'(((32'(L.in_h) + 32'(2 * L.pad) - 32'(L.k)) >> (L.stride == 2'd2 ? 1 : 0)) + 1);
        d_conv_w <= 16'(((32'(L.in_w) + 32'(2 * L.pad) - 32'(L.k)) >> (L.stride == 2'd2 ? 1 : 0)) + 1);
        d_n_seq <= (L.n_out == 0) ? 16'd0 : L.n_act + L.n_res;
        d_cin_st <= L.in_ch_gated ? L.n_in : L.in_c;
        d_cout_st <= L.out_ch_gated ? L.n_out : L.out_c;
        d_no_run <= L.n_seq == 0 || L.G == 0;
        rec_last_nx <= 32'(layer) + 32'd2 == a_layer_count;
        lc_big <= a_layer_count > 32'(DG_MAX_LAYERS);
        lc_zero <= a_layer_count == 32'd0;
        lc_one <= a_layer_count == 32'd1;
        n_tiles_m1 <= n_tiles_r - 16'd1;
        // (chk_n_tiles is settled from the checker's third cycle, g_nt_r between records)
        e_nres <= (chk_n_tiles > g_nt_r) ? chk_n_tiles - g_nt_r : 16'd0;
        e_nres_z <= chk_n_tiles <= g_nt_r;
    end
    // the next list kind needed after the current one (5 = none)
`ifndef SYNTHESIS
    // nd_m2 / nd_one (two registers behind L, settled in the checker's cycles) against nd_n
    always_ff @(posedge clk)
        if (st[ST_LIST_SEL] && list_next != 3'd5 && (list_next_m2 != list_next_n - 16'd2 || list_next_one != (list_next_n == 16'd1)))
            $error("dg_sequencer: list count flags stale (list %0d, %0d entries)", list_next, list_next_n);
`endif
    always_comb begin
        // (the first needed kind one-hot, then AND-OR selects: no chain of muxes, issue 16)
        logic [4:0] c, first;
        c = lk_mask & nd;
        for (int kind = 0; kind < 5; kind++) first[kind] = c[kind] && (c & 5'((1 << kind) - 1)) == '0;
        list_next = 3'd5;
        list_next_n = 16'd0;
        list_next_m2 = 16'd0;
        list_next_one = 1'b0;
        list_next_off = 32'd0;
        if (first[0]) list_next = 3'd0;
        if (first[1]) list_next = 3'd1;
        if (first[2]) list_next = 3'd2;
        if (first[3]) list_next = 3'd3;
        if (first[4]) list_next = 3'd4;
        for (int kind = 0; kind < 5; kind++) begin
            list_next_n = list_next_n | (first[kind] ? nd_n[kind] : 16'd0);
            list_next_m2 = list_next_m2 | (first[kind] ? nd_m2[kind] : 16'd0);
            list_next_one = list_next_one | (first[kind] && nd_one[kind]);
            list_next_off = list_next_off | (first[kind] ? nd_off[kind] : 32'd0);
        end
    end

    always_comb begin
        rcmd_valid = 1'b0;
        rcmd_addr = 64'd0;
        rcmd_beats = 24'd1;
        if (st[ST_DESC_REQ]) begin
            rcmd_valid = 1'b1;
            rcmd_addr = desc_addr & ~64'(AB - 1);
            rcmd_beats = 24'((32'(desc_a_off) + DG_DESC_BYTES + AB - 1) >> ABL);
        end
        if (st[ST_LIST_REQ]) begin
            rcmd_valid = 1'b1;
            rcmd_addr = list_cmd_addr;
            rcmd_beats = list_cmd_beats;
        end
        rd_ready = st[ST_DESC_RX] || (st[ST_LIST_RX] && !list_have);
    end
    assign run = st[ST_RUN];
    assign run_init = st[ST_HALO] && (!L.zero_halo || halo_endf);
    assign idle = st[ST_IDLE];
    assign g_rec = desc;      // the aligned record (gate / head records)
    assign g_dense = `DG_REG_FIELD(a_run_flags, RUN_FLAGS, DENSE) != 0;
    // (rec_start is the count of the cycle before the record's first: no adder on its write)
    assign rec_cycles = cycle_cnt[31:0] - rec_start;
    assign done = st[ST_DONE];

    // the cycle log: entry `layer` = rec_cycles when the record ends (ST_LAYER_END without a
    // bus error), LPW entries per row (lane = entry mod LPW), one write port, one registered
    // read port (no reset: entries not written in this start are never read, the head's
    // write covers records 0 .. layer_count - 1 and substitutes its own)
    localparam int LPW = AB / 4;
    localparam int LPWL = (LPW > 1) ? $clog2(LPW) : 0;
    localparam int LROWS = (DG_MAX_LAYERS + LPW - 1) / LPW;
    localparam int LRA = (LROWS > 1) ? $clog2(LROWS) : 1;
    wire cyc_we = st[ST_LAYER_END] && wr_idle && rd_idle && !(rd_err || wr_err);
    wire [I_MAX_LAYERS-1:0] cyc_wi = I_MAX_LAYERS'(layer);
    wire [31:0] cyc_wrow = 32'(cyc_wi >> LPWL);
    wire [31:0] cyc_wlane = 32'(cyc_wi) & 32'(LPW - 1);
    for (genvar k = 0; k < LPW; k++) begin : g_cyc
        logic [31:0] mem [LROWS];
        logic [31:0] q_r;             // a plain register (an array element would not be)
        always_ff @(posedge clk) begin
            if (cyc_we && cyc_wlane == 32'(k)) mem[LRA'(cyc_wrow)] <= rec_cycles;
            q_r <= mem[LRA'(cyc_ra)];
        end
        assign cyc_q[k * 32 +: 32] = q_r;
    end

    // The bitmap's writes through a one-hot pointer: bm_oh[i] while entry i is next, so
    // bitmap[i]'s enable is bm_oh[i] and its data the beat's bit, shared (no decode of list_e
    // per bit). A bit whose entry is still waiting for its beat loads a stale bit and is
    // rewritten at its entry. The pointer starts at bit 0 in ST_LIST_SEL of the bitmap list,
    // moves one bit per entry and clears at the grid's last tile (the bits past the grid stay
    // 0, as before) or the list's end, so no bit is enabled after the list.
    logic [DG_MAX_TILES-1:0] bm_oh;
    wire bm_step = st[ST_LIST_RX] && list_have && lk_bm;
    wire bm_clr = rst || st[ST_CHECK2] || st[ST_LIST_END]
                  || (bm_step && (list_lastf || list_e == n_tiles_m1));
    always_ff @(posedge clk) begin
        if (bm_clr) bm_oh <= '0;
        else if (st[ST_LIST_SEL] || bm_step) bm_oh <= {bm_oh[DG_MAX_TILES-2:0], st[ST_LIST_SEL] && list_next == 3'd4};
        for (int i = 0; i < DG_MAX_TILES; i++) begin
            if (st[ST_CHECK2]) bitmap[i] <= 1'b0;
            else if (bm_oh[i]) bitmap[i] <= list_beat[0];
        end
    end
`ifndef SYNTHESIS
    // the bitmap as the entry-indexed writes made it
    logic [DG_MAX_TILES-1:0] bitmap_ref;
    always_ff @(posedge clk) begin
        if (st[ST_CHECK2]) bitmap_ref <= '0;
        else if (bm_step && !bm_past) bitmap_ref[I_MAX_TILES'(list_e)] <= list_beat[0];
        if (st[ST_RUN] && bitmap != bitmap_ref)
            $error("dg_sequencer: bitmap pointer writes");
    end
`endif

    // the active-tile flag RAM (above): the list entry's word (read-modify-write, the
    // residual list's check) and the bitmap check's read-ahead word
    wire ls_step = st[ST_LIST_RX] && list_have && !lk_bm;    // a tile / res / channel entry
    wire [LEB-1:0] ls_v = list_beat[LEB-1:0];
    wire [I_MAX_TILES-1:0] ls_t = I_MAX_TILES'(ls_v);
    wire [I_MAX_TILES-1:0] af_ra = st[ST_LIST_SEL] ? '0 : af_n;
    wire [AFW-1:0] af_vw = af_mem[AFNL'(32'(ls_t) / AFW)];
    wire [AFW-1:0] af_aw = af_mem[AFNL'(32'(af_ra) / AFW)];
    wire af_vbit = af_vw[32'(ls_t) % AFW] || !L.tile_gated;
    wire af_bit = af_aw[32'(af_ra) % AFW] || !L.tile_gated;
    wire af_we = st[ST_CHECK] || (ls_step && lk_tile && ls_v < list_limit);
    wire [AFNL-1:0] af_wa = st[ST_CHECK] ? af_ci : AFNL'(32'(ls_t) / AFW);
    wire [AFW-1:0] af_wd = st[ST_CHECK] ? '0 : (af_vw | (AFW'(1) << (32'(ls_t) % AFW)));
    always_ff @(posedge clk) begin
        if (af_we) af_mem[af_wa] <= af_wd;
        af_ci <= st[ST_CHECK] ? af_ci + AFNL'(1) : '0;
    end
`ifndef SYNTHESIS
    // the flags as flip-flops (what the RAM must read), and the bitmap check's flag read
    // ahead against the flag it stands for
    logic [DG_MAX_TILES-1:0] act_flags;
    always_ff @(posedge clk) begin
        if (st[ST_CHECK2]) act_flags <= L.tile_gated ? '0 : '1;
        if (ls_step && lk_tile && ls_v < list_limit) act_flags[ls_t] <= 1'b1;
        if (ls_step && lk_res && af_vbit != act_flags[ls_t])
            $error("dg_sequencer: active-tile flag RAM (tile %0d)", ls_t);
        if (st[ST_LIST_RX] && list_have && lk_bm && !bm_past
            && (af_q != act_flags[I_MAX_TILES'(list_e)] || af_n != I_MAX_TILES'(list_e + 16'd1)))
            $error("dg_sequencer: bitmap flag read-ahead (entry %0d)", list_e);
    end
`endif

    always_ff @(posedge clk) begin
        err_clear <= 1'b0;
        chk_start <= 1'b0;
        ch_we <= 2'b00;
        if (!st[ST_IDLE]) cycle_cnt <= cycle_cnt + 64'd1;
        unique case (1'b1)
            st[ST_IDLE]: begin
                if (ap_start) begin
                    `GO(ST_START)
                    cycle_cnt <= 64'd1;
                    layer <= 8'd0;
                    desc_addr <= a_program;
                    err_clear <= 1'b1;
                    status_reg <= 32'd0;
                    g_seen <= 1'b0;
                    g_nt_r <= 16'd0;
                    g_nc_r <= 16'd0;
                    g2_seen <= 1'b0;
                    g_nc2_r <= 16'd0;
                    g_nt_z <= 1'b1;
                    g_nc_z <= 1'b1;
                    g_nc2_z <= 1'b1;
                    g_is_g2 <= 1'b0;
                    use_e <= 1'b0;
                    g_start <= 1'b0;
                end
            end
            st[ST_START]: begin
                err_code <= DG_ERR_BAD_COUNT;
                err_entry <= 16'd0;
                if (lc_big) begin
                    `GO(ST_ERR)
                end else if (lc_zero) begin
                    `GO(ST_DONE)
                end else begin
                    rec_start <= cycle_cnt[31:0];
                    rec_last <= lc_one;
                    `GO(ST_DESC_REQ)
                end
            end
            st[ST_DESC_REQ]: begin
                if (rcmd_ready) begin
                    `GO(ST_DESC_RX)
                    desc_off <= (ABL+1)'(desc_a_off);
                    for (int r = 0; r < AB; r++)
                        desc_hi[r] <= 32'(r) + 32'(desc_a_off) >= 32'(AB);
                    desc_boh <= (DESC_BEATS+1)'(1);
                end
            end
            st[ST_DESC_RX]: begin
                if (rd_valid) begin
                    for (int i = 0; i < DG_DESC_BYTES; i++)
                        if (desc_hi[i % AB] ? desc_boh[i / AB + 1] : desc_boh[i / AB])
                            desc[i * 8 +: 8] <= desc_rot[(i % AB) * 8 +: 8];
                    desc_boh <= desc_boh << 1;
                    if (rd_last) `GO(ST_ALIGN)
                end
            end
            st[ST_ALIGN]: begin
                // `desc` is complete since the last beat: its kind registered
                r_bad_magic <= `DG_DESC(desc, MAGIC) != DG_DESC_MAGIC_WIDTH'(DG_DESC_MAGIC)
                               || `DG_DESC(desc, VERSION) != DG_DESC_VERSION_WIDTH'(DG_FORMAT_VERSION);
                r_gate <= 32'(`DG_DESC(desc, OP)) == DG_OP_GATE;
                r_head <= 32'(`DG_DESC(desc, OP)) == DG_OP_HEAD;
                r_gate2 <= 32'(`DG_DESC(desc, OP)) == DG_OP_GATE2;
                r_bad_op <= 32'(`DG_DESC(desc, OP)) != DG_OP_GATE && 32'(`DG_DESC(desc, OP)) != DG_OP_HEAD
                            && 32'(`DG_DESC(desc, OP)) != DG_OP_GATE2 && 32'(`DG_DESC(desc, OP)) != DG_OP_CONV
                            && (!DG_DEPTHWISE || 32'(`DG_DESC(desc, OP)) != DG_OP_DWCONV);
                r_from_gate <= `DG_DESC(desc, FROM_GATE);
                use_e <= 1'b0;
                chk_start <= 1'b1;
                `GO(ST_CHECK)
            end
            st[ST_CHECK]: begin
                // magic / op first (any record); a conv record waits for dg_desc_check on
                // `desc`, then latches the layer
                L.k <= `DG_DESC(desc_chk, K);
                L.stride <= `DG_DESC(desc_chk, STRIDE);
                L.pad <= `DG_DESC(desc_chk, PAD);
                L.in_signed <= `DG_DESC(desc_chk, IN_SIGNED);
                L.out_signed <= `DG_DESC(desc_chk, OUT_SIGNED);
                L.residual <= `DG_DESC(desc_chk, RESIDUAL);
                L.res_signed <= `DG_DESC(desc_chk, RES_SIGNED);
                L.maxpool <= `DG_DESC(desc_chk, MAXPOOL);
                L.emit_sums <= `DG_DESC(desc_chk, EMIT_SUMS);
                L.tile_gated <= `DG_DESC(desc_chk, TILE_GATED);
                L.in_ch_gated <= `DG_DESC(desc_chk, IN_CH_GATED);
                L.out_ch_gated <= `DG_DESC(desc_chk, OUT_CH_GATED);
                L.zero_halo <= `DG_DESC(desc_chk, ZERO_HALO);
                L.im2col <= `DG_DESC(desc_chk, IM2COL);
                // (constant 0 without the depthwise hardware: the units' depthwise parts prune)
                L.dw <= DG_DEPTHWISE && 32'(`DG_DESC(desc_chk, OP)) == DG_OP_DWCONV;
                L.pixel_sums <= `DG_DESC(desc_chk, PIXEL_SUMS);
                L.shift <= `DG_DESC(desc_chk, SHIFT);
                L.in_h <= `DG_DESC(desc_chk, IN_H);
                L.in_w <= `DG_DESC(desc_chk, IN_W);
                L.out_h <= `DG_DESC(desc_chk, OUT_H);
                L.out_w <= `DG_DESC(desc_chk, OUT_W);
                L.in_c <= `DG_DESC(desc_chk, IN_C);
                L.out_c <= `DG_DESC(desc_chk, OUT_C);
                L.tile <= `DG_DESC(desc_chk, TILE);
                L.grid_h <= `DG_DESC(desc_chk, GRID_H);
                L.grid_w <= `DG_DESC(desc_chk, GRID_W);
                L.n_act <= `DG_DESC(desc_chk, N_ACTIVE_TILES);
                L.n_res <= `DG_DESC(desc_chk, N_RES_TILES);
                L.n_out <= `DG_DESC(desc_chk, N_ACTIVE_OUT);
                L.n_in <= `DG_DESC(desc_chk, N_ACTIVE_IN);
                L.res_mult <= `DG_DESC(desc_chk, RES_MULT);
                L.in_abs <= a_fmap_base + 64'(`DG_DESC(desc_chk, IN_OFFSET));
                L.out_abs <= a_fmap_base + 64'(`DG_DESC(desc_chk, OUT_OFFSET));
                L.res_abs <= a_fmap_base + 64'(`DG_DESC(desc_chk, RES_OFFSET));
                L.w_abs <= a_weight_base + 64'(`DG_DESC(desc_chk, WEIGHT_OFFSET));
                L.p_abs <= a_weight_base + 64'(`DG_DESC(desc_chk, PARAM_OFFSET));
                L.tl_off <= `DG_DESC(desc_chk, TILE_LIST_OFFSET);
                L.rl_off <= `DG_DESC(desc_chk, RES_TILE_LIST_OFFSET);
                L.ol_off <= `DG_DESC(desc_chk, OUT_CH_LIST_OFFSET);
                L.il_off <= `DG_DESC(desc_chk, IN_CH_LIST_OFFSET);
                L.bm_off <= `DG_DESC(desc_chk, BITMAP_OFFSET);
                L.sums_abs <= a_sums_base + 64'(`DG_DESC(desc_chk, SUMS_OFFSET));
                err_code <= ck_code;
                err_entry <= ck_entry;
                if (!use_e && r_bad_magic) begin
                    // program.record_op: magic and version of any record
                    `GO(ST_ERR)
                end else if (!use_e && (r_gate || r_head || r_gate2)) begin
                    if ((r_head && !rec_last) || (r_gate2 && !g_seen)) begin
                        // the head must be the last record of the start; a gate-2 record needs
                        // a gate record before it in this start
                        `GO(ST_ERR)
                    end else begin
                        g_is_head <= r_head;
                        g_is_g2 <= r_gate2;
                        g_start <= 1'b1;
                        `GO(ST_GATE)
                    end
                end else if (!use_e && r_bad_op) begin
                    `GO(ST_ERR)
                end else if (chk_wait) begin
                    `GO(ST_CHECK)                  // the check is running
                end else if (chk_code != 8'd0) begin
                    `GO(ST_ERR)
                end else if (!use_e && r_from_gate) begin
                    if (!g_seen) begin
                        // from_gate without a gate record before it in this start
                        `GO(ST_ERR)
                    end else if (e_skip) begin
                        `GO(ST_LAYER_END)          // skipped: nothing read or written
                    end else begin
                        desc <= effective(desc, e_nres, e_nres_z, g_nt_r, e_n_out, e_n_in);
                        use_e <= 1'b1;
                        chk_start <= 1'b1;
                        `GO(ST_CHECK)              // check and latch E
                    end
                end else begin
                    use_e <= 1'b0;
                    `GO(ST_CHECK2)
                end
            end
            st[ST_CHECK2]: begin
                // the products come from dg_desc_check (its result on this layer's `desc`)
                L.kk <= chk_kk;
                L.cin_st <= d_cin_st;
                L.cout_st <= d_cout_st;
                L.in_row_bytes <= chk_in_row;
                n_tiles_r <= chk_n_tiles;
                L.N <= d_N;
                L.G <= d_G;
                L.SG <= d_SG;
                L.conv_h <= d_conv_h;
                L.conv_w <= d_conv_w;
                L.ic_layout <= L.in_ch_gated && !L.out_ch_gated;
                L.n_seq <= d_n_seq;
                // im2col geometry (formats.im2col_row_pitch; meaningful when L.im2col)
                L.kc <= 16'(chk_kc);
                L.kkc <= 16'(chk_kkc);
                // (depthwise: the steps of a channel's k*k taps row, ceil(kk / TN) words)
                L.S <= l_dw ? d_s_dw : d_s_conv;
                L.kp <= d_kp;
                L.pitch <= 16'(chk_pitch);
                L.i2c_qa <= d_qa;
                L.i2c_ra <= d_ra;
                L.i2c_dq <= d_dq;
                lk_mask <= 5'b11111;
                `GO(ST_LIST_SEL)
            end
            st[ST_LIST_SEL]: begin
                list_cmd_addr <= (a_work_base + 64'(list_next_off)) & ~64'(AB - 1);
                list_cmd_beats <= (list_next == 3'd4)
                    ? 24'((32'(list_next_n) / 8 + 32'(AB) - 1) >> ABL)
                    : 24'((32'(LEB / 8) * 32'(list_next_n) + 32'(AB) - 1) >> ABL);
                // (every list and halo register is set whether a list follows or the halo
                // fill: only the next state depends on list_next, issue 16)
                halo_i <= 16'd0;
                halo_endf <= halo_hmax <= 16'd1;
                halo_qr <= 8'd0;
                halo_rr <= 8'd0;
                halo_qc <= 8'd0;
                halo_rc <= 8'd0;
                halo_rowbase <= 16'd0;
                lk_mask <= 5'b11110 << list_next;
                list_n_m2 <= list_next_m2;
                list_lastf <= list_next_one;
                list_first <= 1'b1;
                list_e <= 16'd0;
                list_have <= 1'b0;
                list_slot <= 16'd0;
                lk_bm <= list_next == 3'd4;
                af_q <= af_bit;         // (af_ra = 0 in ST_LIST_SEL)
                af_n <= I_MAX_TILES'(1);
                lk_rcode <= (list_next == 3'd4) ? DG_ERR_BITMAP_MISMATCH
                          : (list_next <= 3'd1) ? DG_ERR_TILE_RANGE : DG_ERR_CHANNEL_RANGE;
                lk_ocode <= (list_next == 3'd4) ? DG_ERR_BITMAP_MISMATCH
                          : (list_next <= 3'd1) ? DG_ERR_TILE_ORDER : DG_ERR_CHANNEL_ORDER;
                lk_tile <= list_next == 3'd0;
                lk_res <= list_next == 3'd1;
                lk_we <= (list_next == 3'd2) ? 2'b01 : (list_next == 3'd3) ? 2'b10 : 2'b00;
                slot_lastf <= 1'b0;
                bm_past <= 1'b0;
                range_err <= 1'b0;
                order_err <= 1'b0;
                inter_err <= 1'b0;
                case (list_next)
                    3'd0, 3'd1: list_limit <= n_tiles_r;
                    3'd2: list_limit <= L.out_c;
                    default: list_limit <= L.in_c;
                endcase
                if (list_next == 3'd5) `GO(ST_HALO)
                else `GO(ST_LIST_REQ)
            end
            st[ST_LIST_REQ]: begin
                if (rcmd_ready) `GO(ST_LIST_RX)
            end
            st[ST_LIST_RX]: begin
                if (!list_have) begin
                    if (rd_valid) begin
                        list_beat <= rd_data;
                        list_have <= 1'b1;
                        list_slot <= 16'd0;
                        slot_lastf <= 1'b0;         // (a beat holds >= 4 entries, >= 64 bits)
                    end
                end else if (lk_bm) begin
                    // bitmap: one bit per cycle, compared with the tile list's flag af_q
                    // (act_flags[list_e], read one step ahead)
                    logic bit_v;
                    bit_v = list_beat[0];           // (the beat shifts by one bit per entry)
                    // first bit that differs from the tile list (bits past the grid must be 0)
                    if (bm_past) begin
                        if (bit_v && !range_err) begin range_err <= 1'b1; range_at <= list_e; end
                    end else begin
                        // (bitmap[list_e] <= bit_v: through the pointer bm_oh, above)
                        if (bit_v != af_q && !range_err) begin
                            range_err <= 1'b1;
                            range_at <= list_e;
                        end
                    end
                    af_q <= af_bit;
                    af_n <= af_n + I_MAX_TILES'(1);
                    bm_past <= bm_past || list_e == n_tiles_m1;
                    list_e <= list_e + 16'd1;
                    list_lastf <= list_e == list_n_m2;
                    list_beat <= list_beat >> 1;
                    list_slot <= list_slot + 16'd1;
                    slot_lastf <= 32'(list_slot) == DG_AXI_DATA_BITS - 2;
                    if (slot_lastf || list_lastf) list_have <= 1'b0;
                    if (list_lastf) `GO(ST_LIST_END)
                end else begin
                    logic [LEB-1:0] v;
                    v = list_beat[LEB-1:0];         // (the beat shifts by one entry per entry)
                    // the earliest faulty entry is reported (range before order on the same entry)
                    if (!range_err && !order_err) begin
                        if (v >= list_limit) begin range_err <= 1'b1; range_at <= list_e; end
                        else if (!list_first && v <= list_prev) begin order_err <= 1'b1; order_at <= list_e; end
                    end
                    list_prev <= v;
                    if (lk_tile) begin
                        tl_mem[I_MAX_TILES'(list_e)] <= I_MAX_TILES'(v);
                        // (v < list_limit: its flag is set, af_we)
                    end
                    if (lk_res) begin
                        rl_mem[I_MAX_TILES'(list_e)] <= I_MAX_TILES'(v);
                        // (no v < list_limit: an entry past it is a range error, which ST_LIST_END
                        // reports before inter_err)
                        if (af_vbit) inter_err <= 1'b1;
                    end
                    ch_we <= lk_we;
                    ch_idx <= list_e;
                    ch_val <= 16'(v);
                    list_e <= list_e + 16'd1;
                    list_lastf <= list_e == list_n_m2;
                    list_first <= 1'b0;
                    list_beat <= list_beat >> LEB;
                    list_slot <= list_slot + 16'd1;
                    slot_lastf <= 32'(list_slot) == EPB - 2;
                    if (slot_lastf || list_lastf) list_have <= 1'b0;
                    if (list_lastf) `GO(ST_LIST_END)
                end
            end
            st[ST_LIST_END]: begin
                // (the earliest entry; range / order before a tile both active and
                // residual-only: interpreter TILE_ORDER, entry 0)
                err_code <= range_err ? lk_rcode : order_err ? lk_ocode : DG_ERR_TILE_ORDER;
                err_entry <= range_err ? range_at : order_err ? order_at : 16'd0;
                if (range_err || order_err || inter_err) begin
                    `GO(ST_ERR)
                end else begin
                    `GO(ST_LIST_SEL)
                end
            end
            st[ST_HALO]: begin
                // input row -> (tile row * grid_w, inside grid) and col -> tile col tables
                if (32'(halo_i) < DG_MAX_HEIGHT) begin
                    // {inside the grid, halo_qr * grid_w}
                    rt_mem[I_MAX_HEIGHT'(halo_i)] <= {halo_qr < L.grid_h, I_MAX_TILES'(halo_rowbase)};
                end
                if (32'(halo_i) < DG_MAX_WIDTH) begin
                    ct_mem[I_MAX_WIDTH'(halo_i)] <= {halo_qc < L.grid_w, CTW'(halo_qc)};
                end
                if (halo_rr == halo_side_m1) begin
                    halo_rr <= 8'd0;
                    halo_qr <= halo_qr + 8'd1;
                    halo_rowbase <= halo_rowbase + 16'(L.grid_w);
                end
                else halo_rr <= halo_rr + 8'd1;
                if (halo_rc == halo_side_m1) begin halo_rc <= 8'd0; halo_qc <= halo_qc + 8'd1; end
                else halo_rc <= halo_rc + 8'd1;
                halo_i <= halo_i + 16'd1;
                halo_endf <= 32'(halo_i) + 32'd2 >= 32'(halo_hmax);
                if (!L.zero_halo || halo_endf) begin
                    // run_init: the loader, compute and write-back reset their run state
                    if (d_no_run) `GO(ST_LAYER_END) else `GO(ST_RUN)
                end
            end
            st[ST_RUN]: begin
                if (layer_done) `GO(ST_LAYER_END)
            end
            st[ST_GATE]: begin
                g_start <= 1'b0;
                err_code <= g_err_code;
                err_entry <= g_err_entry;
                if (g_done) begin
                    if (g_err_code != 8'd0) begin
                        `GO(ST_ERR)
                    end else begin
                        if (g_is_g2) begin
                            g2_seen <= 1'b1;
                            g_nc2_r <= g_nc2;
                            g_nc2_z <= g_nc2 == 16'd0;
                        end else if (!g_is_head) begin
                            g_seen <= 1'b1;
                            g_nt_r <= g_nt;
                            g_nc_r <= g_nc;
                            g_nt_z <= g_nt == 16'd0;
                            g_nc_z <= g_nc == 16'd0;
                            g2_seen <= 1'b0;
                        end
                        `GO(ST_LAYER_END)
                    end
                end
            end
            st[ST_LAYER_END]: begin
                err_code <= DG_ERR_AXI_ERROR;
                err_entry <= 16'd0;
                if (wr_idle && rd_idle) begin
                    if (rd_err || wr_err) begin
                        `GO(ST_ERR)
                    end else begin
                        // (the cycle log's entry: cyc_we, above)
                        rec_start <= cycle_cnt[31:0];
                        if (rec_last) begin
                            `GO(ST_DONE)
                        end else begin
                            layer <= layer + 8'd1;
                            rec_last <= rec_last_nx;
                            desc_addr <= desc_addr + 64'(DG_DESC_BYTES);
                            `GO(ST_DESC_REQ)
                        end
                    end
                end
            end
            st[ST_ERR]: begin
                if (wr_idle && rd_idle) begin
                    status_reg <= status_value(err_code, layer, err_entry);
                    `GO(ST_DONE)
                end
            end
            st[ST_DONE]: begin
                // ap_done/ap_ready/ap_vld are asserted combinationally in this state, so
                // the register block clears ap_start on the same edge that returns to IDLE
                `GO(ST_IDLE)
            end
            default: `GO(ST_IDLE)
        endcase

        if (rst) begin
            `GO(ST_IDLE)
            g_start <= 1'b0;
            use_e <= 1'b0;
            chk_start <= 1'b0;
            status_reg <= 32'd0;
            cycle_cnt <= 64'd0;
        end
    end
    wire unused_ok = &{1'b0, state, rd_last, L.res_signed, a_run_flags[31:1], cyc_ra[23:LRA], cyc_wrow[31:LRA]};
`undef GO
endmodule
`default_nettype wire
