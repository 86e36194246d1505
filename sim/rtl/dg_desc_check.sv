`default_nettype none
// dg_desc_check: validates one 24-word layer descriptor exactly like formats.validate_descriptor.
//
// The first failing check, in the order of dgfpga.interpreter._decode (formats
// unpack_descriptor/validate_descriptor without regions, then the region checks), gives
// STATUS CODE (dgfpga.regmap.ERROR_CODES, per field as interpreter._FIELD_CODE) and
// ENTRY = the descriptor word of the offending field (0 for magic, version and
// reserved bits; word 5 (tile) for NO_FIT). docs/rtl.md lists the mapping.
//
// Pipelined for depth (issue 16): `start` (one cycle) begins a check of `desc` and the region
// sizes, which must stay unchanged until `done`; `done` rises DG_DESC_CHECK_CYCLES cycles
// later and stays with err_code/err_entry (and the derived sizes below) until the next start.
// Every product of the checks goes through ONE registered 32x16 multiplier, one product
// per cycle (a fixed issue order, each operand registered >= 3 cycles before use), so the
// check costs two DSP48E2 instead of one per product and no multiply sits between two
// registers with logic around it. The failing conditions are registered as a vector, then
// the first one is found in two registered steps (groups of 8, then the groups).
// The products are exact (fields are at most 16 bits; a product at most 48), so a condition
// reached after the field checks (every field then within its limits) is the 64-bit one.
module dg_desc_check
    import dg_pkg::*;    // descriptor fields, limits, buffer sizes, STATUS codes (dg_pkg.sv)
(
    input  wire                        clk,
    input  wire                        start,      // begin a check (inputs stable until done)
    input  wire [DG_DESC_WORDS*32-1:0] desc,
    input  wire [31:0]      fmap_bytes,
    input  wire [31:0]      weight_bytes,
    input  wire [31:0]      work_bytes,
    input  wire [31:0]      sums_bytes,
    output logic            done,                  // result valid (held until the next start)
    output logic [7:0]      err_code,
    output logic [15:0]     err_entry,
    // exact products of the checked descriptor (valid with done), latched by dg_sequencer
    output wire [15:0]      n_tiles,               // grid_h * grid_w
    output wire [7:0]       kk,                    // k * k
    output wire [31:0]      kc,                    // k * in_c
    output wire [31:0]      kkc,                   // k * k * in_c
    output wire [31:0]      i2c_pitch,             // formats.im2col_row_pitch
    output wire [31:0]      in_row_bytes           // in_w * stored input channels
);
`include "dg_fields.svh"
    function automatic logic [31:0] word(input int w);
        return `DG_DESC_WORD(desc, w);
    endfunction
    // fields (formats.DESCRIPTOR_FIELDS through the generated DG_DESC_<FIELD>_WORD/_LSB/_WIDTH)
    wire [DG_DESC_MAGIC_WIDTH-1:0]   magic = `DG_DESC(desc, MAGIC);
    wire [DG_DESC_VERSION_WIDTH-1:0] version = `DG_DESC(desc, VERSION);
    wire [DG_DESC_OP_WIDTH-1:0]      op = `DG_DESC(desc, OP);
    wire [DG_DESC_K_WIDTH-1:0]       k = `DG_DESC(desc, K);
    wire [DG_DESC_STRIDE_WIDTH-1:0]  stride = `DG_DESC(desc, STRIDE);
    wire [DG_DESC_PAD_WIDTH-1:0]     pad = `DG_DESC(desc, PAD);
    wire        in_signed = `DG_DESC(desc, IN_SIGNED);
    wire        out_signed = `DG_DESC(desc, OUT_SIGNED);
    wire        relu = `DG_DESC(desc, RELU);
    wire        residual = `DG_DESC(desc, RESIDUAL);
    wire        res_signed = `DG_DESC(desc, RES_SIGNED);
    wire        maxpool = `DG_DESC(desc, MAXPOOL);
    wire        emit_sums = `DG_DESC(desc, EMIT_SUMS);
    wire        tile_gated = `DG_DESC(desc, TILE_GATED);
    wire        in_ch_gated = `DG_DESC(desc, IN_CH_GATED);
    wire        out_ch_gated = `DG_DESC(desc, OUT_CH_GATED);
    wire        zero_halo = `DG_DESC(desc, ZERO_HALO);
    wire        in_place = `DG_DESC(desc, IN_PLACE);
    wire        from_gate = `DG_DESC(desc, FROM_GATE);
    wire        im2col = `DG_DESC(desc, IM2COL);
    wire        pixel_sums = `DG_DESC(desc, PIXEL_SUMS);
    // a depthwise record; without the depthwise hardware (DG_DEPTHWISE = 0) op 5 is an unknown
    // op (BAD_OP at the op word, formats.validate_descriptor) and the depthwise checks prune
    wire        dw = DG_DEPTHWISE && op == DG_DESC_OP_WIDTH'(DG_OP_DWCONV);
    wire [DG_DESC_SHIFT_WIDTH-1:0]   shift = `DG_DESC(desc, SHIFT);
    wire [DG_DESC_IN_H_WIDTH-1:0]    in_h = `DG_DESC(desc, IN_H);
    wire [DG_DESC_IN_W_WIDTH-1:0]    in_w = `DG_DESC(desc, IN_W);
    wire [DG_DESC_OUT_H_WIDTH-1:0]   out_h = `DG_DESC(desc, OUT_H);
    wire [DG_DESC_OUT_W_WIDTH-1:0]   out_w = `DG_DESC(desc, OUT_W);
    wire [DG_DESC_IN_C_WIDTH-1:0]    in_c = `DG_DESC(desc, IN_C);
    wire [DG_DESC_OUT_C_WIDTH-1:0]   out_c = `DG_DESC(desc, OUT_C);
    wire [DG_DESC_TILE_WIDTH-1:0]    tile = `DG_DESC(desc, TILE);
    wire [DG_DESC_GRID_H_WIDTH-1:0]  grid_h = `DG_DESC(desc, GRID_H);
    wire [DG_DESC_GRID_W_WIDTH-1:0]  grid_w = `DG_DESC(desc, GRID_W);
    wire [DG_DESC_N_ACTIVE_TILES_WIDTH-1:0] n_act = `DG_DESC(desc, N_ACTIVE_TILES);
    wire [DG_DESC_N_RES_TILES_WIDTH-1:0]    n_res = `DG_DESC(desc, N_RES_TILES);
    wire [DG_DESC_N_ACTIVE_OUT_WIDTH-1:0]   n_out = `DG_DESC(desc, N_ACTIVE_OUT);
    wire [DG_DESC_N_ACTIVE_IN_WIDTH-1:0]    n_in = `DG_DESC(desc, N_ACTIVE_IN);
    wire [DG_DESC_RES_MULT_WIDTH-1:0]       res_mult = `DG_DESC(desc, RES_MULT);
    wire [31:0] in_off = 32'(`DG_DESC(desc, IN_OFFSET));
    wire [31:0] out_off = 32'(`DG_DESC(desc, OUT_OFFSET));
    wire [31:0] res_off = 32'(`DG_DESC(desc, RES_OFFSET));
    // reserved bits: every descriptor bit no field covers (incl. the reserved words) must be 0
    function automatic logic [DG_DESC_WORDS*32-1:0] field_bits();
        logic [DG_DESC_WORDS*32-1:0] u;
        u = '0;
`define DG_USE(F) `DG_DESC(u, F) = '1;
        `DG_USE(MAGIC) `DG_USE(VERSION) `DG_USE(OP) `DG_USE(K) `DG_USE(STRIDE) `DG_USE(PAD)
        `DG_USE(IN_SIGNED) `DG_USE(OUT_SIGNED) `DG_USE(RELU) `DG_USE(RESIDUAL) `DG_USE(RES_SIGNED)
        `DG_USE(MAXPOOL) `DG_USE(EMIT_SUMS) `DG_USE(TILE_GATED) `DG_USE(IN_CH_GATED)
        `DG_USE(OUT_CH_GATED) `DG_USE(ZERO_HALO) `DG_USE(IN_PLACE) `DG_USE(FROM_GATE) `DG_USE(IM2COL) `DG_USE(PIXEL_SUMS) `DG_USE(SHIFT)
        `DG_USE(IN_H) `DG_USE(IN_W) `DG_USE(OUT_H) `DG_USE(OUT_W) `DG_USE(IN_C) `DG_USE(OUT_C)
        `DG_USE(TILE) `DG_USE(GRID_H) `DG_USE(GRID_W) `DG_USE(N_ACTIVE_TILES) `DG_USE(N_RES_TILES)
        `DG_USE(N_ACTIVE_OUT) `DG_USE(N_ACTIVE_IN) `DG_USE(RES_MULT) `DG_USE(IN_OFFSET)
        `DG_USE(OUT_OFFSET) `DG_USE(RES_OFFSET) `DG_USE(WEIGHT_OFFSET) `DG_USE(PARAM_OFFSET)
        `DG_USE(TILE_LIST_OFFSET) `DG_USE(RES_TILE_LIST_OFFSET) `DG_USE(OUT_CH_LIST_OFFSET)
        `DG_USE(IN_CH_LIST_OFFSET) `DG_USE(BITMAP_OFFSET) `DG_USE(SUMS_OFFSET)
`undef DG_USE
        return u;
    endfunction
    localparam logic [DG_DESC_WORDS*32-1:0] FIELD_BITS = field_bits();

    // ---- the products: one registered 32x16 multiplier, one product issued per cycle
    // P[i] is written 3 cycles after it is issued (operand regs, product reg, P), so an
    // operand that is a product is read at least 3 issue slots after that product.
    localparam int NP = 20;
    // (the weight stream's size PWB by step 17: its product, k*k*in_c (PKKC), issued early)
    localparam int PN_TILES = 0, PHWI = 1, PHWO = 2, PKK = 3, PGHT = 4, PGWT = 5, PKKC = 6, PACC = 7,
                   PSIDE2 = 8, PP0 = 9, PINB = 10, POUTB = 11, PRESB = 12, PKC = 13, PWB = 14,
                   PSUMS = 15, PPFIT = 16, PI2CF = 17, PWFIT = 18, PROW = 19;
    logic [47:0] P [NP];
    logic [5:0]  step;
    logic        busy;
    logic [31:0] ma;
    logic [15:0] mb;
    logic [4:0]  mi, mi2;
    logic        mv, mv2;
    logic [47:0] mp;

    // field-derived values, registered (settled one cycle after the inputs)
    logic [15:0] ct_q;                  // conv patch side under a fused pool
    logic [15:0] side_q;                // input patch side (formats patch side)
    logic [15:0] cin_st_q, cout_st_q;   // stored channels
    logic [31:0] want_out_h_q, want_out_w_q;
    logic        halo_out_bad_q;        // zero_halo: out_h / out_w != ceil(in_h / stride) (/ in_w)
    logic [31:0] halo_ch_q, halo_cw_q;  // ceil(in_h / stride), ceil(in_w / stride)
    logic        conv_neg_q;
    logic        reserved_q, kernel_ok_q;
    // product-derived values, registered (settled one cycle after their products)
    logic [31:0] pitch_q;               // im2col_row_pitch
    logic [31:0] wsel_q;                // bytes per output channel of the weight stream

    // kernel sides the engine supports (formats.KERNELS)
    logic kernel_ok;
    always_comb begin
        kernel_ok = 1'b0;
        for (int i = 0; i < DG_N_KERNELS; i++) if (32'(k) == DG_KERNELS[i]) kernel_ok = 1'b1;
    end
    wire signed [31:0] conv_h_num = 32'(in_h) + 32'(2 * pad) - 32'(k);
    wire signed [31:0] conv_w_num = 32'(in_w) + 32'(2 * pad) - 32'(k);
    wire [31:0] conv_h = 32'((conv_h_num >>> (stride == 2'd2 ? 1 : 0)) + 1);
    wire [31:0] conv_w = 32'((conv_w_num >>> (stride == 2'd2 ? 1 : 0)) + 1);
    wire [15:0] ct = maxpool ? 16'd2 * 16'(tile) + 16'd1 : 16'(tile);
    always_ff @(posedge clk) begin
        reserved_q <= (desc & ~FIELD_BITS) != '0;
        kernel_ok_q <= kernel_ok;
        conv_neg_q <= conv_h_num < 0 || conv_w_num < 0;
        want_out_h_q <= maxpool ? ((conv_h - 32'd1) >> 1) + 32'd1 : conv_h;
        want_out_w_q <= maxpool ? ((conv_w - 32'd1) >> 1) + 32'd1 : conv_w;
        // ceil(in / stride) a cycle before its compare (the check is read steps later)
        halo_ch_q <= (32'(in_h) + 32'(stride) - 32'd1) >> (stride == 2'd2 ? 1 : 0);
        halo_cw_q <= (32'(in_w) + 32'(stride) - 32'd1) >> (stride == 2'd2 ? 1 : 0);
        halo_out_bad_q <= 32'(out_h) != halo_ch_q || 32'(out_w) != halo_cw_q;
        ct_q <= ct;
        // (ct - 1) * stride + k; stride is 1 or 2 wherever the value is used (checked first)
        side_q <= ((ct - 16'd1) << (stride == 2'd2 ? 1 : 0)) + 16'(k);
        cin_st_q <= in_ch_gated ? 16'(n_in) : 16'(in_c);
        cout_st_q <= out_ch_gated ? 16'(n_out) : 16'(out_c);
    end
    always_ff @(posedge clk) begin
        // i2c_p0 = patch_side * in_c + 2 AB; pitch = p0 + ((k * in_c - p0) mod NB)
        logic [31:0] p0;
        p0 = 32'(P[PP0]) + 32'(2 * AB);
        pitch_q <= p0 + ((32'(P[PKC]) - p0) & 32'(NB - 1));
        // im2col: kk * in_c rounded up to TN (i2c_kp); depthwise: kk rounded up to TN
        // (formats.dw_row_bytes); otherwise kk * in_c
        wsel_q <= dw ? ((32'(P[PKK]) + 32'(DG_TN - 1)) >> TNL) << TNL
                : im2col ? ((32'(P[PKKC]) + 32'(DG_TN - 1)) >> TNL) << TNL : 32'(P[PKKC]);
    end

    // operands of issue slot `step`: `iss`, one-hot (bit i while step == i < NP, busy), selects
    // them (an AND-OR of the slots, no decode of `step` on the path: issue 16)
    logic [NP-1:0] iss;
    logic [31:0] opa;
    logic [15:0] opb;
    always_comb begin
        logic [31:0] sa;
        logic [15:0] sb;
        opa = 32'd0;
        opb = 16'd0;
        for (int i = 0; i < NP; i++) begin
          sa = 32'd0;
          sb = 16'd0;
          case (i)
            PN_TILES: begin sa = 32'(grid_h); sb = 16'(grid_w); end
            PHWI:     begin sa = 32'(in_h); sb = 16'(in_w); end
            PHWO:     begin sa = 32'(out_h); sb = 16'(out_w); end
            PKK:      begin sa = 32'(k); sb = 16'(k); end
            PGHT:     begin sa = 32'(grid_h); sb = 16'(tile); end
            PGWT:     begin sa = 32'(grid_w); sb = 16'(tile); end
            PKC:      begin sa = 32'(k); sb = 16'(in_c); end
            PACC:     begin sa = 32'(ct_q); sb = ct_q; end
            PSIDE2:   begin sa = 32'(side_q); sb = side_q; end
            PP0:      begin sa = 32'(in_c); sb = side_q; end
            PINB:     begin sa = 32'(P[PHWI]); sb = cin_st_q; end
            POUTB:    begin sa = 32'(P[PHWO]); sb = cout_st_q; end
            PRESB:    begin sa = 32'(P[PHWO]); sb = 16'(out_c); end
            PKKC:     begin sa = 32'(P[PKK]); sb = 16'(in_c); end
            PWFIT:    begin sa = 32'(P[PKK]); sb = 16'(n_in); end
            PSUMS:    begin sa = 32'(P[PN_TILES]); sb = cout_st_q; end
            PPFIT:    begin sa = 32'(P[PSIDE2]); sb = cin_st_q; end
            PI2CF:    begin sa = pitch_q; sb = side_q; end
            PWB:      begin sa = wsel_q; sb = 16'(out_c); end
            PROW:     begin sa = 32'(in_w); sb = cin_st_q; end
            default: ;
          endcase
          opa = opa | (iss[i] ? sa : 32'd0);
          opb = opb | (iss[i] ? sb : 16'd0);
        end
    end
    // step: 0..NP-1 issue, NP+2 last product in P, NP+3 fail_q, NP+4 group regs, NP+5 result
    localparam int STEPS = NP + 5;
    always_ff @(posedge clk) begin
        mv <= 1'b0;
        iss <= iss << 1;
        if (busy) begin
            step <= step + 6'd1;
            if (32'(step) < NP) begin
                ma <= opa;
                mb <= opb;
                mi <= 5'(step);
                mv <= 1'b1;
            end
            if (32'(step) + 1 == STEPS) begin
                busy <= 1'b0;
                done <= 1'b1;
            end
        end
        mp <= 48'(ma) * 48'(mb);
        mi2 <= mi;
        mv2 <= mv;
        if (mv2) P[mi2] <= mp;
        if (start) begin
            step <= 6'd0;
            iss <= NP'(1);
            busy <= 1'b1;
            done <= 1'b0;
        end
    end
    assign n_tiles = 16'(P[PN_TILES]);
    assign kk = 8'(P[PKK]);
    assign kc = 32'(P[PKC]);
    assign kkc = 32'(P[PKKC]);
    assign i2c_pitch = pitch_q;
    assign in_row_bytes = 32'(P[PROW]);

    // sizes (formats.descriptor_buffers), from the products
    wire [63:0] n_tiles64 = 64'(P[PN_TILES]);
    wire [63:0] in_bytes = 64'(P[PINB]);
    wire [63:0] out_bytes = 64'(P[POUTB]);
    wire [63:0] res_bytes = 64'(P[PRESB]);
    localparam logic [63:0] LE = 64'(DG_LIST_ENTRY_BITS / 8);          // bytes of a work-list entry
    localparam logic [63:0] BW = 64'(DG_BITMAP_WORD_BITS);             // bits of a bitmap word
    wire [63:0] bitmap_bytes = BW / 64'd8 * ((n_tiles64 + BW - 64'd1) / BW);
    wire [63:0] w_bytes = 64'(P[PWB]);
    // a from_gate template reserves its residual-only list slot (up to every tile)
    wire res_slot = from_gate && residual && !in_place && `DG_DESC(desc, RES_TILE_LIST_OFFSET) != 0;

    // buffers: descriptor_buffers order; region 0 fmap, 1 weight, 2 work, 3 sums
    localparam int NBUF = 11;
    logic [NBUF-1:0] used;
    logic [31:0] boff [NBUF];
    logic [63:0] bsize [NBUF];
    logic [1:0]  bregion [NBUF];
    logic [15:0] bfield [NBUF];
    always_comb begin
        // in, out, weight, param, res, tile list, res tile list, out ch, in ch, bitmap, sums
        // (a depthwise layer's out-channel list is its in-channel list: in_ch_list_offset unused)
        used = {emit_sums, zero_halo, in_ch_gated && !dw, out_ch_gated, n_res != 16'd0 || res_slot, tile_gated,
                residual, 1'b1, 1'b1, 1'b1, 1'b1};
        boff = '{in_off, out_off, 32'(`DG_DESC(desc, WEIGHT_OFFSET)), 32'(`DG_DESC(desc, PARAM_OFFSET)),
                 res_off, 32'(`DG_DESC(desc, TILE_LIST_OFFSET)), 32'(`DG_DESC(desc, RES_TILE_LIST_OFFSET)),
                 32'(`DG_DESC(desc, OUT_CH_LIST_OFFSET)), 32'(`DG_DESC(desc, IN_CH_LIST_OFFSET)),
                 32'(`DG_DESC(desc, BITMAP_OFFSET)), 32'(`DG_DESC(desc, SUMS_OFFSET))};
        bsize = '{in_bytes, out_bytes, w_bytes, 64'(out_c) * 64'(DG_PARAM_BYTES), res_bytes,
                  LE * 64'(n_act), LE * ((n_res != 16'd0) ? 64'(n_res) : n_tiles64), LE * 64'(n_out), LE * 64'(n_in),
                  bitmap_bytes, (pixel_sums ? out_bytes : 64'(P[PSUMS])) * 64'(DG_SUM_BYTES)};
        bregion = '{2'd0, 2'd0, 2'd1, 2'd1, 2'd0, 2'd2, 2'd2, 2'd2, 2'd2, 2'd2, 2'd3};
        bfield = '{16'(DG_DESC_IN_OFFSET_WORD), 16'(DG_DESC_OUT_OFFSET_WORD), 16'(DG_DESC_WEIGHT_OFFSET_WORD),
                   16'(DG_DESC_PARAM_OFFSET_WORD), 16'(DG_DESC_RES_OFFSET_WORD),
                   16'(DG_DESC_TILE_LIST_OFFSET_WORD), 16'(DG_DESC_RES_TILE_LIST_OFFSET_WORD),
                   16'(DG_DESC_OUT_CH_LIST_OFFSET_WORD), 16'(DG_DESC_IN_CH_LIST_OFFSET_WORD),
                   16'(DG_DESC_BITMAP_OFFSET_WORD), 16'(DG_DESC_SUMS_OFFSET_WORD)};
    end
    // OFFSET_FIELDS order (in, out, res, weight, param, lists, bitmap, sums) -> buffer slot
    localparam int OFF_SLOT [11] = '{0, 1, 4, 2, 3, 5, 6, 7, 8, 9, 10};

    // ---- the buffer end checks (offset + size against 2^32 and the region): one buffer per
    // step through one adder and two compares instead of 22 of each. Step RB0 + k selects
    // buffer RB_ORDER[k]'s offset, size and region size into registers (its size's product
    // is in P by then), the step after compares; the flags hold to the end of the check.
    // The ends of in / out / res are kept for the overlap checks.
    localparam int RB0 = 10;                        // step of the first buffer (RB0 + NBUF - 1 <= NP)
    localparam int RB_ORDER [NBUF] = '{3, 5, 6, 0, 1, 4, 7, 2, 10, 8, 9};   // step RB0 + k: buffer RB_ORDER[k]
    if (RB0 + NBUF - 1 > NP || RB0 < 1) begin : g_rb_chk
        $error("dg_desc_check: the buffer end checks must end by step NP + 1");
    end
    logic [NBUF-1:0] rb_iss, rb_iss2;              // one-hot: bit k in step RB0 + k / the step after
    logic [63:0] rb_o, rb_z, rb_r;                 // the selected buffer's offset, size, region size
    logic [NBUF-1:0] rb_big, rb_reg;               // buffer b ends past 2^32 / past its region
    logic [63:0] rb_end [NBUF];                    // offset + size (in, out, res: read by the overlap checks)
    always_ff @(posedge clk) begin
        logic [63:0] o, z, r, e;
        o = '0;
        z = '0;
        r = '0;
        for (int j = 0; j < NBUF; j++) begin
            o = o | (rb_iss[j] ? 64'(boff[RB_ORDER[j]]) : 64'd0);
            z = z | (rb_iss[j] ? bsize[RB_ORDER[j]] : 64'd0);
            case (bregion[RB_ORDER[j]])
                2'd0: r = r | (rb_iss[j] ? 64'(fmap_bytes) : 64'd0);
                2'd1: r = r | (rb_iss[j] ? 64'(weight_bytes) : 64'd0);
                2'd2: r = r | (rb_iss[j] ? 64'(work_bytes) : 64'd0);
                default: r = r | (rb_iss[j] ? 64'(sums_bytes) : 64'd0);
            endcase
        end
        rb_o <= o;
        // (a size of 2^33 or more as 2^33: offset + size stays past 2^32 and past the region,
        // and past the 32-bit offsets the overlap checks compare it with; 34 bits, not 64)
        rb_z <= 64'({|z[63:33], z[32:0]});
        rb_r <= r;
        e = rb_o + rb_z;
        for (int j = 0; j < NBUF; j++) begin
            if (rb_iss2[j]) begin
                rb_big[RB_ORDER[j]] <= e > 64'h1_0000_0000;
                rb_reg[RB_ORDER[j]] <= e > rb_r;
                rb_end[RB_ORDER[j]] <= e;
            end
        end
        rb_iss <= {rb_iss[NBUF-2:0], iss[RB0 - 1]};
        rb_iss2 <= rb_iss;
    end
    // (the other buffer's end from the registered sums: an > 0 && bn > 0 && ao < bo + bn && bo < ao + an)
    function automatic logic overlap(input logic [63:0] ao, input logic [63:0] an, input logic [63:0] ae,
                                     input logic [63:0] bo, input logic [63:0] bn, input logic [63:0] be);
        return an > 0 && bn > 0 && ao < be && bo < ae;
    endfunction

    // ---- the checks in the interpreter's order: fail[i] with its (code, entry)
    localparam int NC = 128;            // condition slots (the checks below use fewer)
    localparam int NG = NC / 8;
    logic [NC-1:0] fail, fail_q;
    logic [7:0]    fcode [NC];
    logic [15:0]   fentry [NC];
    always_comb begin
        int n;
        n = 0;
        fail = '0;
        for (int i = 0; i < NC; i++) begin fcode[i] = 8'd0; fentry[i] = 16'd0; end
`define DG_FAIL(cond, code, entry) \
        begin fail[n] = (cond); fcode[n] = 8'(code); fentry[n] = 16'(entry); n = n + 1; end
        // unpack_descriptor: reserved words, reserved bits, magic, version
        `DG_FAIL(reserved_q, DG_DESC_MAGIC_ERR, DG_DESC_MAGIC_WORD)
        `DG_FAIL(magic != DG_DESC_MAGIC_WIDTH'(DG_DESC_MAGIC), DG_DESC_MAGIC_ERR, DG_DESC_MAGIC_WORD)
        `DG_FAIL(version != DG_DESC_VERSION_WIDTH'(DG_FORMAT_VERSION), DG_DESC_VERSION_ERR, DG_DESC_VERSION_WORD)
        // validate_descriptor
        `DG_FAIL(op != DG_DESC_OP_WIDTH'(DG_OP_CONV) && !dw, DG_DESC_OP_ERR, DG_DESC_OP_WORD)
        `DG_FAIL(!kernel_ok_q, DG_DESC_K_ERR, DG_DESC_K_WORD)
        `DG_FAIL(stride != 2'd1 && stride != 2'd2, DG_DESC_STRIDE_ERR, DG_DESC_STRIDE_WORD)
        `DG_FAIL(32'(pad) > 32'(k >> 1), DG_DESC_PAD_ERR, DG_DESC_PAD_WORD)
        `DG_FAIL(shift == 0, DG_DESC_SHIFT_ERR, DG_DESC_SHIFT_WORD)
        `DG_FAIL(in_h == 0 || 32'(in_h) > DG_MAX_HEIGHT, DG_DESC_IN_H_ERR, DG_DESC_IN_H_WORD)
        `DG_FAIL(out_h == 0 || 32'(out_h) > DG_MAX_HEIGHT, DG_DESC_OUT_H_ERR, DG_DESC_OUT_H_WORD)
        `DG_FAIL(in_w == 0 || 32'(in_w) > DG_MAX_WIDTH, DG_DESC_IN_W_ERR, DG_DESC_IN_W_WORD)
        `DG_FAIL(out_w == 0 || 32'(out_w) > DG_MAX_WIDTH, DG_DESC_OUT_W_ERR, DG_DESC_OUT_W_WORD)
        `DG_FAIL(in_c == 0 || 32'(in_c) > DG_MAX_IN_CHANNELS, DG_DESC_IN_C_ERR, DG_DESC_IN_C_WORD)
        `DG_FAIL(out_c == 0 || 32'(out_c) > DG_MAX_OUT_CHANNELS, DG_DESC_OUT_C_ERR, DG_DESC_OUT_C_WORD)
        `DG_FAIL(conv_neg_q, DG_DESC_IN_H_ERR, DG_DESC_IN_H_WORD)
        `DG_FAIL(32'(out_h) != want_out_h_q, DG_DESC_OUT_H_ERR, DG_DESC_OUT_H_WORD)
        `DG_FAIL(32'(out_w) != want_out_w_q, DG_DESC_OUT_W_ERR, DG_DESC_OUT_W_WORD)
        `DG_FAIL(relu != !out_signed, DG_DESC_RELU_ERR, DG_DESC_RELU_WORD)
        `DG_FAIL(res_signed && !residual, DG_DESC_RES_SIGNED_ERR, DG_DESC_RES_SIGNED_WORD)
        `DG_FAIL(residual && maxpool, DG_DESC_MAXPOOL_ERR, DG_DESC_MAXPOOL_WORD)
        `DG_FAIL(maxpool && (tile_gated || in_ch_gated || out_ch_gated), DG_DESC_MAXPOOL_ERR, DG_DESC_MAXPOOL_WORD)
        `DG_FAIL(zero_halo && !tile_gated, DG_DESC_ZERO_HALO_ERR, DG_DESC_ZERO_HALO_WORD)
        // zero_halo only where the input is the output's tile grid scaled by the stride
        // (out = ceil(in / stride), no fused max-pool): formats.validate_descriptor
        `DG_FAIL(zero_halo && (maxpool || halo_out_bad_q), DG_DESC_ZERO_HALO_ERR, DG_DESC_ZERO_HALO_WORD)
        `DG_FAIL(residual && res_mult[31], DG_DESC_RES_MULT_ERR, DG_DESC_RES_MULT_WORD)
        `DG_FAIL(!residual && res_mult != 0, DG_DESC_RES_MULT_ERR, DG_DESC_RES_MULT_WORD)
        `DG_FAIL(in_place && (!residual || !tile_gated), DG_DESC_IN_PLACE_ERR, DG_DESC_IN_PLACE_WORD)
        `DG_FAIL(in_place && (out_ch_gated || out_off != res_off), DG_DESC_IN_PLACE_ERR, DG_DESC_IN_PLACE_WORD)
        `DG_FAIL(in_place && n_res != 0, DG_DESC_N_RES_TILES_ERR, DG_DESC_N_RES_TILES_WORD)
        `DG_FAIL(from_gate && !tile_gated, DG_DESC_FROM_GATE_ERR, DG_DESC_FROM_GATE_WORD)
        `DG_FAIL(from_gate && n_res != 0, DG_DESC_N_RES_TILES_ERR, DG_DESC_N_RES_TILES_WORD)
        `DG_FAIL(im2col && (32'(k) == 32'd1 || in_ch_gated || zero_halo), DG_DESC_IM2COL_ERR, DG_DESC_IM2COL_WORD)
        `DG_FAIL(pixel_sums && !emit_sums, DG_DESC_PIXEL_SUMS_ERR, DG_DESC_PIXEL_SUMS_WORD)
        // the depthwise rules (formats._check_depthwise), after the flag rules; k: formats.DW_KERNELS
        // = (3,) (not in the generated include yet)
        `DG_FAIL(dw && 32'(k) != DG_DW_KERNEL, DG_DESC_K_ERR, DG_DESC_K_WORD)
        `DG_FAIL(dw && out_c != in_c, DG_DESC_OUT_C_ERR, DG_DESC_OUT_C_WORD)
        `DG_FAIL(dw && residual, DG_DESC_RESIDUAL_ERR, DG_DESC_RESIDUAL_WORD)
        `DG_FAIL(dw && maxpool, DG_DESC_MAXPOOL_ERR, DG_DESC_MAXPOOL_WORD)
        `DG_FAIL(dw && im2col, DG_DESC_IM2COL_ERR, DG_DESC_IM2COL_WORD)
        `DG_FAIL(dw && in_ch_gated != out_ch_gated, DG_DESC_IN_CH_GATED_ERR, DG_DESC_IN_CH_GATED_WORD)
        `DG_FAIL(dw && n_in != n_out, DG_DESC_N_ACTIVE_IN_ERR, DG_DESC_N_ACTIVE_IN_WORD)
        `DG_FAIL(tile == 0 || 32'(tile) > DG_MAX_TILE, DG_DESC_TILE_ERR, DG_DESC_TILE_WORD)
        // (grid - 1) * tile >= out or grid * tile < out (grid 0 fails first)
        `DG_FAIL(grid_h == 0 || 32'(P[PGHT]) - 32'(tile) >= 32'(out_h)
                 || 32'(P[PGHT]) < 32'(out_h), DG_DESC_GRID_H_ERR, DG_DESC_GRID_H_WORD)
        `DG_FAIL(32'(grid_h) > DG_MAX_GRID, DG_DESC_GRID_H_ERR, DG_DESC_GRID_H_WORD)
        `DG_FAIL(grid_w == 0 || 32'(P[PGWT]) - 32'(tile) >= 32'(out_w)
                 || 32'(P[PGWT]) < 32'(out_w), DG_DESC_GRID_W_ERR, DG_DESC_GRID_W_WORD)
        `DG_FAIL(32'(grid_w) > DG_MAX_GRID, DG_DESC_GRID_W_ERR, DG_DESC_GRID_W_WORD)
        `DG_FAIL(tile_gated && 64'(n_act) > n_tiles64, DG_DESC_N_ACTIVE_TILES_ERR, DG_DESC_N_ACTIVE_TILES_WORD)
        `DG_FAIL(!tile_gated && 64'(n_act) != n_tiles64, DG_DESC_N_ACTIVE_TILES_ERR, DG_DESC_N_ACTIVE_TILES_WORD)
        `DG_FAIL(n_res != 0 && !(residual && tile_gated), DG_DESC_N_RES_TILES_ERR, DG_DESC_N_RES_TILES_WORD)
        `DG_FAIL(n_res != 0 && 64'(n_act) + 64'(n_res) > n_tiles64, DG_DESC_N_RES_TILES_ERR, DG_DESC_N_RES_TILES_WORD)
        `DG_FAIL(out_ch_gated && n_out > out_c, DG_DESC_N_ACTIVE_OUT_ERR, DG_DESC_N_ACTIVE_OUT_WORD)
        `DG_FAIL(!out_ch_gated && n_out != out_c, DG_DESC_N_ACTIVE_OUT_ERR, DG_DESC_N_ACTIVE_OUT_WORD)
        `DG_FAIL(in_ch_gated && n_in > in_c, DG_DESC_N_ACTIVE_IN_ERR, DG_DESC_N_ACTIVE_IN_WORD)
        `DG_FAIL(!in_ch_gated && n_in != in_c, DG_DESC_N_ACTIVE_IN_ERR, DG_DESC_N_ACTIVE_IN_WORD)
        for (int i = 0; i < 11; i++) begin
            `DG_FAIL(!used[OFF_SLOT[i]] && boff[OFF_SLOT[i]] != 0, DG_ERR_BAD_OFFSET, bfield[OFF_SLOT[i]])
            `DG_FAIL(boff[OFF_SLOT[i]] % DG_AXI_BYTES != 0, DG_ERR_BAD_OFFSET, bfield[OFF_SLOT[i]])
        end
        for (int b = 0; b < NBUF; b++) begin
            `DG_FAIL(used[b] && rb_big[b], DG_ERR_BAD_OFFSET, bfield[b])
        end
        `DG_FAIL(overlap(64'(in_off), in_bytes, rb_end[0], 64'(out_off), out_bytes, rb_end[1]),
                 DG_DESC_OUT_OFFSET_ERR, DG_DESC_OUT_OFFSET_WORD)
        `DG_FAIL(residual && !in_place && overlap(64'(res_off), res_bytes, rb_end[4], 64'(out_off), out_bytes, rb_end[1]),
                 DG_DESC_OUT_OFFSET_ERR, DG_DESC_OUT_OFFSET_WORD)
        // NO_FIT (formats.fit_limits): all TM lanes of weights, whatever n_active_out is;
        // depthwise: the whole layer's rows (out_c x dw_row_bytes = the weight stream)
        `DG_FAIL(dw ? w_bytes > 64'(DG_FIT_WEIGHT_GROUP_BYTES)
                    : 64'(DG_TM) * 64'(P[PWFIT]) > 64'(DG_FIT_WEIGHT_GROUP_BYTES), DG_ERR_NO_FIT, DG_DESC_TILE_WORD)
        `DG_FAIL(64'(P[PPFIT]) > 64'(DG_FIT_IFM_PATCH_BYTES), DG_ERR_NO_FIT, DG_DESC_TILE_WORD)
        `DG_FAIL(64'(DG_TM) * 64'(P[PACC]) * 64'(DG_ACC_BITS / 8) > 64'(DG_FIT_ACC_BYTES), DG_ERR_NO_FIT, DG_DESC_TILE_WORD)
        // the im2col buffer bounds: BAD_FLAGS at the flag (the layer fits without it)
        `DG_FAIL(im2col && (64'(DG_TM) * 64'(wsel_q) > 64'(DG_FIT_WEIGHT_GROUP_BYTES)
                            || 64'(P[PI2CF]) + 64'(AB) > 64'(DG_FIT_IFM_PATCH_BYTES)),
                 DG_DESC_IM2COL_ERR, DG_DESC_IM2COL_WORD)
        for (int b = 0; b < NBUF; b++) begin
            `DG_FAIL(used[b] && rb_reg[b], DG_ERR_BAD_OFFSET, bfield[b])
        end
`undef DG_FAIL
    end

    // ---- the first failing check: per group of 8, then over the groups (registered)
    // g_nz[g]: group g has a failing condition, q_nz[q]: quad q (groups 4q .. 4q + 3) has,
    // registered with the group's first (code, entry); the result takes the group with none
    // before it in its quad nor in an earlier quad (few inputs each, then an AND-OR of the
    // groups: no chain over the 128 conditions, issue 16)
    localparam int NQ = NG / 4;
    logic [NG-1:0] g_nz;
    logic [NQ-1:0] q_nz;
    logic [7:0]    g_code [NG];
    logic [15:0]   g_entry [NG];
    always_ff @(posedge clk) begin
        fail_q <= fail;
        for (int g = 0; g < NG; g++) g_nz[g] <= fail_q[g * 8 +: 8] != 8'd0;
        for (int q = 0; q < NQ; q++) q_nz[q] <= fail_q[q * 32 +: 32] != 32'd0;
        for (int g = NG - 1; g >= 0; g--) begin
            g_code[g] <= 8'd0;
            g_entry[g] <= 16'd0;
            for (int j = 7; j >= 0; j--) begin
                if (fail_q[g * 8 + j]) begin
                    g_code[g] <= fcode[g * 8 + j];
                    g_entry[g] <= fentry[g * 8 + j];
                end
            end
        end
        if (busy && 32'(step) + 1 == STEPS) begin
            logic [7:0] c;
            logic [15:0] e;
            c = 8'd0;
            e = 16'd0;
            for (int g = 0; g < NG; g++) begin
                logic first;
                first = g_nz[g] && (g_nz[(g / 4) * 4 +: 4] & 4'((1 << (g % 4)) - 1)) == 4'd0
                        && (q_nz & NQ'((1 << (g / 4)) - 1)) == '0;
                c = c | (first ? g_code[g] : 8'd0);
                e = e | (first ? g_entry[g] : 16'd0);
            end
            err_code <= c;
            err_entry <= e;
        end
    end
    wire unused_ok = &{1'b0, in_signed, emit_sums};
endmodule
`default_nettype wire
