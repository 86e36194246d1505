`default_nettype none
// dg_desc_check: validates one 24-word layer descriptor exactly like formats.validate_descriptor (combinational).
//
// The first failing check, in the order of dgfpga.interpreter._decode (formats
// unpack_descriptor/validate_descriptor without regions, then the region checks), gives
// STATUS CODE (dgfpga.regmap.ERROR_CODES, per field as interpreter._FIELD_CODE) and
// ENTRY = the descriptor word of the offending field (0 for magic, version and
// reserved bits; word 5 (tile) for NO_FIT). docs/rtl.md lists the mapping.
module dg_desc_check
    import dg_pkg::*;    // descriptor fields, limits, buffer sizes, STATUS codes (dg_pkg.sv)
(
    input  wire [DG_DESC_WORDS*32-1:0] desc,
    input  wire [31:0]      fmap_bytes,
    input  wire [31:0]      weight_bytes,
    input  wire [31:0]      work_bytes,
    input  wire [31:0]      sums_bytes,
    output logic [7:0]      err_code,
    output logic [15:0]     err_entry
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
        `DG_USE(OUT_CH_GATED) `DG_USE(ZERO_HALO) `DG_USE(IN_PLACE) `DG_USE(FROM_GATE) `DG_USE(IM2COL) `DG_USE(SHIFT)
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
    // kernel sides the engine supports (formats.KERNELS)
    logic kernel_ok;
    always_comb begin
        kernel_ok = 1'b0;
        for (int i = 0; i < DG_N_KERNELS; i++) if (32'(k) == DG_KERNELS[i]) kernel_ok = 1'b1;
    end
    wire reserved_set = (desc & ~FIELD_BITS) != '0;

    // derived sizes (64-bit so no product overflows)
    wire [63:0] kk = 64'(k) * 64'(k);
    wire signed [31:0] conv_h_num = 32'(in_h) + 32'(2 * pad) - 32'(k);
    wire signed [31:0] conv_w_num = 32'(in_w) + 32'(2 * pad) - 32'(k);
    wire [31:0] conv_h = 32'((conv_h_num >>> (stride == 2'd2 ? 1 : 0)) + 1);
    wire [31:0] conv_w = 32'((conv_w_num >>> (stride == 2'd2 ? 1 : 0)) + 1);
    wire [31:0] want_out_h = maxpool ? ((conv_h - 32'd1) >> 1) + 32'd1 : conv_h;
    wire [31:0] want_out_w = maxpool ? ((conv_w - 32'd1) >> 1) + 32'd1 : conv_w;
    wire [63:0] n_tiles = 64'(grid_h) * 64'(grid_w);
    // a from_gate template reserves its residual-only list slot (up to every tile)
    wire res_slot = from_gate && residual && !in_place && `DG_DESC(desc, RES_TILE_LIST_OFFSET) != 0;
    wire [63:0] in_c_st = in_ch_gated ? 64'(n_in) : 64'(in_c);
    wire [63:0] out_c_st = out_ch_gated ? 64'(n_out) : 64'(out_c);
    wire [63:0] in_bytes = 64'(in_h) * 64'(in_w) * in_c_st;
    wire [63:0] out_bytes = 64'(out_h) * 64'(out_w) * out_c_st;
    wire [63:0] res_bytes = 64'(out_h) * 64'(out_w) * 64'(out_c);
    localparam logic [63:0] LE = 64'(DG_LIST_ENTRY_BITS / 8);          // bytes of a work-list entry
    localparam logic [63:0] BW = 64'(DG_BITMAP_WORD_BITS);             // bits of a bitmap word
    wire [63:0] bitmap_bytes = BW / 64'd8 * ((n_tiles + BW - 64'd1) / BW);
    wire [63:0] ct = maxpool ? 64'd2 * 64'(tile) + 64'd1 : 64'(tile);
    wire [63:0] patch_side = (ct - 64'd1) * 64'(stride) + 64'(k);
    // im2col (formats.im2col_row_bytes, im2col_row_pitch, im2col_fit_problems)
    wire [63:0] i2c_kc = 64'(k) * 64'(in_c);
    wire [63:0] i2c_kp = ((kk * 64'(in_c) + 64'(DG_TN - 1)) >> TNL) << TNL;
    wire [63:0] i2c_p0 = patch_side * 64'(in_c) + 64'(2 * AB);
    wire [63:0] i2c_pitch = i2c_p0 + ((i2c_kc - i2c_p0) & 64'(NB - 1));
    wire [63:0] w_bytes = im2col ? 64'(out_c) * i2c_kp : 64'(out_c) * kk * 64'(in_c);

    // buffers: descriptor_buffers order; region 0 fmap, 1 weight, 2 work, 3 sums
    localparam int NBUF = 11;
    logic [NBUF-1:0] used;
    logic [31:0] boff [NBUF];
    logic [63:0] bsize [NBUF];
    logic [1:0]  bregion [NBUF];
    logic [15:0] bfield [NBUF];
    always_comb begin
        // in, out, weight, param, res, tile list, res tile list, out ch, in ch, bitmap, sums
        used = {emit_sums, zero_halo, in_ch_gated, out_ch_gated, n_res != 16'd0 || res_slot, tile_gated,
                residual, 1'b1, 1'b1, 1'b1, 1'b1};
        boff = '{in_off, out_off, 32'(`DG_DESC(desc, WEIGHT_OFFSET)), 32'(`DG_DESC(desc, PARAM_OFFSET)),
                 res_off, 32'(`DG_DESC(desc, TILE_LIST_OFFSET)), 32'(`DG_DESC(desc, RES_TILE_LIST_OFFSET)),
                 32'(`DG_DESC(desc, OUT_CH_LIST_OFFSET)), 32'(`DG_DESC(desc, IN_CH_LIST_OFFSET)),
                 32'(`DG_DESC(desc, BITMAP_OFFSET)), 32'(`DG_DESC(desc, SUMS_OFFSET))};
        bsize = '{in_bytes, out_bytes, w_bytes, 64'(out_c) * 64'(DG_PARAM_BYTES), res_bytes,
                  LE * 64'(n_act), LE * ((n_res != 16'd0) ? 64'(n_res) : n_tiles), LE * 64'(n_out), LE * 64'(n_in),
                  bitmap_bytes, n_tiles * out_c_st * 64'(DG_SUM_BYTES)};
        bregion = '{2'd0, 2'd0, 2'd1, 2'd1, 2'd0, 2'd2, 2'd2, 2'd2, 2'd2, 2'd2, 2'd3};
        bfield = '{16'(DG_DESC_IN_OFFSET_WORD), 16'(DG_DESC_OUT_OFFSET_WORD), 16'(DG_DESC_WEIGHT_OFFSET_WORD),
                   16'(DG_DESC_PARAM_OFFSET_WORD), 16'(DG_DESC_RES_OFFSET_WORD),
                   16'(DG_DESC_TILE_LIST_OFFSET_WORD), 16'(DG_DESC_RES_TILE_LIST_OFFSET_WORD),
                   16'(DG_DESC_OUT_CH_LIST_OFFSET_WORD), 16'(DG_DESC_IN_CH_LIST_OFFSET_WORD),
                   16'(DG_DESC_BITMAP_OFFSET_WORD), 16'(DG_DESC_SUMS_OFFSET_WORD)};
    end
    // OFFSET_FIELDS order (in, out, res, weight, param, lists, bitmap, sums) -> buffer slot
    localparam int OFF_SLOT [11] = '{0, 1, 4, 2, 3, 5, 6, 7, 8, 9, 10};

    function automatic logic overlap(input logic [63:0] ao, input logic [63:0] an,
                                     input logic [63:0] bo, input logic [63:0] bn);
        return an > 0 && bn > 0 && ao < bo + bn && bo < ao + an;
    endfunction

    always_comb begin
        logic found;
        logic [63:0] region_size;
        found = 1'b0;
        err_code = 8'd0;
        err_entry = 16'd0;
`define DG_FAIL(cond, code, entry) \
        if (!found && (cond)) begin found = 1'b1; err_code = code; err_entry = 16'(entry); end
        // unpack_descriptor: reserved words, reserved bits, magic, version
        `DG_FAIL(reserved_set, DG_DESC_MAGIC_ERR, DG_DESC_MAGIC_WORD)
        `DG_FAIL(magic != DG_DESC_MAGIC_WIDTH'(DG_DESC_MAGIC), DG_DESC_MAGIC_ERR, DG_DESC_MAGIC_WORD)
        `DG_FAIL(version != DG_DESC_VERSION_WIDTH'(DG_FORMAT_VERSION), DG_DESC_VERSION_ERR, DG_DESC_VERSION_WORD)
        // validate_descriptor
        `DG_FAIL(op != DG_DESC_OP_WIDTH'(DG_OP_CONV), DG_DESC_OP_ERR, DG_DESC_OP_WORD)
        `DG_FAIL(!kernel_ok, DG_DESC_K_ERR, DG_DESC_K_WORD)
        `DG_FAIL(stride != 2'd1 && stride != 2'd2, DG_DESC_STRIDE_ERR, DG_DESC_STRIDE_WORD)
        `DG_FAIL(32'(pad) > 32'(k >> 1), DG_DESC_PAD_ERR, DG_DESC_PAD_WORD)
        `DG_FAIL(shift == 0, DG_DESC_SHIFT_ERR, DG_DESC_SHIFT_WORD)
        `DG_FAIL(in_h == 0 || 32'(in_h) > DG_MAX_HEIGHT, DG_DESC_IN_H_ERR, DG_DESC_IN_H_WORD)
        `DG_FAIL(out_h == 0 || 32'(out_h) > DG_MAX_HEIGHT, DG_DESC_OUT_H_ERR, DG_DESC_OUT_H_WORD)
        `DG_FAIL(in_w == 0 || 32'(in_w) > DG_MAX_WIDTH, DG_DESC_IN_W_ERR, DG_DESC_IN_W_WORD)
        `DG_FAIL(out_w == 0 || 32'(out_w) > DG_MAX_WIDTH, DG_DESC_OUT_W_ERR, DG_DESC_OUT_W_WORD)
        `DG_FAIL(in_c == 0 || 32'(in_c) > DG_MAX_IN_CHANNELS, DG_DESC_IN_C_ERR, DG_DESC_IN_C_WORD)
        `DG_FAIL(out_c == 0 || 32'(out_c) > DG_MAX_OUT_CHANNELS, DG_DESC_OUT_C_ERR, DG_DESC_OUT_C_WORD)
        `DG_FAIL(conv_h_num < 0 || conv_w_num < 0, DG_DESC_IN_H_ERR, DG_DESC_IN_H_WORD)
        `DG_FAIL(32'(out_h) != want_out_h, DG_DESC_OUT_H_ERR, DG_DESC_OUT_H_WORD)
        `DG_FAIL(32'(out_w) != want_out_w, DG_DESC_OUT_W_ERR, DG_DESC_OUT_W_WORD)
        `DG_FAIL(relu != !out_signed, DG_DESC_RELU_ERR, DG_DESC_RELU_WORD)
        `DG_FAIL(res_signed && !residual, DG_DESC_RES_SIGNED_ERR, DG_DESC_RES_SIGNED_WORD)
        `DG_FAIL(residual && maxpool, DG_DESC_MAXPOOL_ERR, DG_DESC_MAXPOOL_WORD)
        `DG_FAIL(maxpool && (tile_gated || in_ch_gated || out_ch_gated), DG_DESC_MAXPOOL_ERR, DG_DESC_MAXPOOL_WORD)
        `DG_FAIL(zero_halo && !tile_gated, DG_DESC_ZERO_HALO_ERR, DG_DESC_ZERO_HALO_WORD)
        // zero_halo only where the input is the output's size (stride 1, pad k/2): formats.validate_descriptor
        `DG_FAIL(zero_halo && (32'(in_h) != 32'(out_h) || 32'(in_w) != 32'(out_w)), DG_DESC_ZERO_HALO_ERR, DG_DESC_ZERO_HALO_WORD)
        `DG_FAIL(residual && res_mult[31], DG_DESC_RES_MULT_ERR, DG_DESC_RES_MULT_WORD)
        `DG_FAIL(!residual && res_mult != 0, DG_DESC_RES_MULT_ERR, DG_DESC_RES_MULT_WORD)
        `DG_FAIL(in_place && (!residual || !tile_gated), DG_DESC_IN_PLACE_ERR, DG_DESC_IN_PLACE_WORD)
        `DG_FAIL(in_place && (out_ch_gated || out_off != res_off), DG_DESC_IN_PLACE_ERR, DG_DESC_IN_PLACE_WORD)
        `DG_FAIL(in_place && n_res != 0, DG_DESC_N_RES_TILES_ERR, DG_DESC_N_RES_TILES_WORD)
        `DG_FAIL(from_gate && !tile_gated, DG_DESC_FROM_GATE_ERR, DG_DESC_FROM_GATE_WORD)
        `DG_FAIL(from_gate && n_res != 0, DG_DESC_N_RES_TILES_ERR, DG_DESC_N_RES_TILES_WORD)
        `DG_FAIL(im2col && (32'(k) == 32'd1 || in_ch_gated || zero_halo), DG_DESC_IM2COL_ERR, DG_DESC_IM2COL_WORD)
        `DG_FAIL(tile == 0 || 32'(tile) > DG_MAX_TILE, DG_DESC_TILE_ERR, DG_DESC_TILE_WORD)
        `DG_FAIL(grid_h == 0 || 32'(grid_h - 8'd1) * 32'(tile) >= 32'(out_h)
                 || 32'(grid_h) * 32'(tile) < 32'(out_h), DG_DESC_GRID_H_ERR, DG_DESC_GRID_H_WORD)
        `DG_FAIL(32'(grid_h) > DG_MAX_GRID, DG_DESC_GRID_H_ERR, DG_DESC_GRID_H_WORD)
        `DG_FAIL(grid_w == 0 || 32'(grid_w - 8'd1) * 32'(tile) >= 32'(out_w)
                 || 32'(grid_w) * 32'(tile) < 32'(out_w), DG_DESC_GRID_W_ERR, DG_DESC_GRID_W_WORD)
        `DG_FAIL(32'(grid_w) > DG_MAX_GRID, DG_DESC_GRID_W_ERR, DG_DESC_GRID_W_WORD)
        `DG_FAIL(tile_gated && 64'(n_act) > n_tiles, DG_DESC_N_ACTIVE_TILES_ERR, DG_DESC_N_ACTIVE_TILES_WORD)
        `DG_FAIL(!tile_gated && 64'(n_act) != n_tiles, DG_DESC_N_ACTIVE_TILES_ERR, DG_DESC_N_ACTIVE_TILES_WORD)
        `DG_FAIL(n_res != 0 && !(residual && tile_gated), DG_DESC_N_RES_TILES_ERR, DG_DESC_N_RES_TILES_WORD)
        `DG_FAIL(n_res != 0 && 64'(n_act) + 64'(n_res) > n_tiles, DG_DESC_N_RES_TILES_ERR, DG_DESC_N_RES_TILES_WORD)
        `DG_FAIL(out_ch_gated && n_out > out_c, DG_DESC_N_ACTIVE_OUT_ERR, DG_DESC_N_ACTIVE_OUT_WORD)
        `DG_FAIL(!out_ch_gated && n_out != out_c, DG_DESC_N_ACTIVE_OUT_ERR, DG_DESC_N_ACTIVE_OUT_WORD)
        `DG_FAIL(in_ch_gated && n_in > in_c, DG_DESC_N_ACTIVE_IN_ERR, DG_DESC_N_ACTIVE_IN_WORD)
        `DG_FAIL(!in_ch_gated && n_in != in_c, DG_DESC_N_ACTIVE_IN_ERR, DG_DESC_N_ACTIVE_IN_WORD)
        for (int i = 0; i < 11; i++) begin
            `DG_FAIL(!used[OFF_SLOT[i]] && boff[OFF_SLOT[i]] != 0, DG_ERR_BAD_OFFSET, bfield[OFF_SLOT[i]])
            `DG_FAIL(boff[OFF_SLOT[i]] % DG_AXI_BYTES != 0, DG_ERR_BAD_OFFSET, bfield[OFF_SLOT[i]])
        end
        for (int b = 0; b < NBUF; b++) begin
            `DG_FAIL(used[b] && 64'(boff[b]) + bsize[b] > 64'h1_0000_0000, DG_ERR_BAD_OFFSET, bfield[b])
        end
        `DG_FAIL(overlap(64'(in_off), in_bytes, 64'(out_off), out_bytes), DG_DESC_OUT_OFFSET_ERR,
                 DG_DESC_OUT_OFFSET_WORD)
        `DG_FAIL(residual && !in_place && overlap(64'(res_off), res_bytes, 64'(out_off), out_bytes),
                 DG_DESC_OUT_OFFSET_ERR, DG_DESC_OUT_OFFSET_WORD)
        // NO_FIT (formats.fit_limits): all TM lanes of weights, whatever n_active_out is
        `DG_FAIL(64'(DG_TM) * kk * 64'(n_in) > 64'(DG_FIT_WEIGHT_GROUP_BYTES), DG_ERR_NO_FIT, DG_DESC_TILE_WORD)
        `DG_FAIL(patch_side * patch_side * in_c_st > 64'(DG_FIT_IFM_PATCH_BYTES), DG_ERR_NO_FIT, DG_DESC_TILE_WORD)
        `DG_FAIL(64'(DG_TM) * ct * ct * 64'(DG_ACC_BITS / 8) > 64'(DG_FIT_ACC_BYTES), DG_ERR_NO_FIT, DG_DESC_TILE_WORD)
        // the im2col buffer bounds: BAD_FLAGS at the flag (the layer fits without it)
        `DG_FAIL(im2col && (64'(DG_TM) * i2c_kp > 64'(DG_FIT_WEIGHT_GROUP_BYTES)
                            || patch_side * i2c_pitch + 64'(AB) > 64'(DG_FIT_IFM_PATCH_BYTES)),
                 DG_DESC_IM2COL_ERR, DG_DESC_IM2COL_WORD)
        for (int b = 0; b < NBUF; b++) begin
            case (bregion[b])
                2'd0: region_size = 64'(fmap_bytes);
                2'd1: region_size = 64'(weight_bytes);
                2'd2: region_size = 64'(work_bytes);
                default: region_size = 64'(sums_bytes);
            endcase
            `DG_FAIL(used[b] && 64'(boff[b]) + bsize[b] > region_size, DG_ERR_BAD_OFFSET, bfield[b])
        end
`undef DG_FAIL
    end
    wire unused_ok = &{1'b0, in_signed, emit_sums};
endmodule
`default_nettype wire
