`default_nettype none
// dg_desc_check: validates one 24-word layer descriptor exactly like formats.validate_descriptor (combinational).
//
// The first failing check, in the order of dgfpga.interpreter._decode (formats
// unpack_descriptor/validate_descriptor without regions, then the region checks), gives
// STATUS CODE (dgfpga.regmap.ERROR_CODES, per field as interpreter._FIELD_CODE) and
// ENTRY = the descriptor word of the offending field (0 for magic, version and
// reserved bits; word 5 (tile) for NO_FIT). docs/rtl.md lists the mapping.
module dg_desc_check #(
    parameter int TM = 4,                  // output channels in parallel
    parameter int MAX_TILE = 4,            // engine config limits (dgfpga/contract/configs/*.toml)
    parameter int MAX_GRID = 8,
    parameter int MAX_WIDTH = 32,
    parameter int MAX_HEIGHT = 32,
    parameter int MAX_IN = 64,
    parameter int MAX_OUT = 64,
    parameter int WBUF_BYTES = 4608,
    parameter int IFM_BYTES = 4608,
    parameter int OFM_BYTES = 1296,
    parameter int AXI_BYTES = 8            // descriptor offsets must be multiples of this
) (
    input  wire [24*32-1:0] desc,
    input  wire [31:0]      fmap_bytes,
    input  wire [31:0]      weight_bytes,
    input  wire [31:0]      work_bytes,
    input  wire [31:0]      sums_bytes,
    output logic [7:0]      err_code,
    output logic [15:0]     err_entry
);
`include "dg_params.svh"
    function automatic logic [31:0] word(input int w);
        return desc[w*32 +: 32];
    endfunction
    // fields (formats.DESCRIPTOR_FIELDS)
    wire [7:0]  magic = desc[7:0];
    wire [7:0]  version = desc[15:8];
    wire [3:0]  op = desc[19:16];
    wire [3:0]  k = desc[23:20];
    wire [1:0]  stride = desc[25:24];
    wire [2:0]  pad = desc[28:26];
    wire        in_signed = desc[32];
    wire        out_signed = desc[33];
    wire        relu = desc[34];
    wire        residual = desc[35];
    wire        res_signed = desc[36];
    wire        maxpool = desc[37];
    wire        emit_sums = desc[38];
    wire        tile_gated = desc[39];
    wire        in_ch_gated = desc[40];
    wire        out_ch_gated = desc[41];
    wire        zero_halo = desc[42];
    wire        in_place = desc[43];
    wire [4:0]  shift = desc[52:48];
    wire [15:0] in_h = desc[2*32 +: 16];
    wire [15:0] in_w = desc[2*32+16 +: 16];
    wire [15:0] out_h = desc[3*32 +: 16];
    wire [15:0] out_w = desc[3*32+16 +: 16];
    wire [15:0] in_c = desc[4*32 +: 16];
    wire [15:0] out_c = desc[4*32+16 +: 16];
    wire [7:0]  tile = desc[5*32 +: 8];
    wire [7:0]  grid_h = desc[5*32+8 +: 8];
    wire [7:0]  grid_w = desc[5*32+16 +: 8];
    wire [15:0] n_act = desc[6*32 +: 16];
    wire [15:0] n_res = desc[6*32+16 +: 16];
    wire [15:0] n_out = desc[7*32 +: 16];
    wire [15:0] n_in = desc[7*32+16 +: 16];
    wire [31:0] res_mult = word(8);
    // reserved bits: word 0 [31:29], word 1 [15:12] and [31:21], word 5 [31:24], words 20..23
    wire [31:0] stray0 = word(0) & 32'hE000_0000;
    wire [31:0] stray1 = word(1) & 32'hFFE0_F000;
    wire [31:0] stray5 = word(5) & 32'hFF00_0000;

    // derived sizes (64-bit so no product overflows)
    wire [63:0] kk = 64'(k) * 64'(k);
    wire signed [31:0] conv_h_num = 32'(in_h) + 32'(2 * pad) - 32'(k);
    wire signed [31:0] conv_w_num = 32'(in_w) + 32'(2 * pad) - 32'(k);
    wire [31:0] conv_h = 32'((conv_h_num >>> (stride == 2'd2 ? 1 : 0)) + 1);
    wire [31:0] conv_w = 32'((conv_w_num >>> (stride == 2'd2 ? 1 : 0)) + 1);
    wire [31:0] want_out_h = maxpool ? ((conv_h - 32'd1) >> 1) + 32'd1 : conv_h;
    wire [31:0] want_out_w = maxpool ? ((conv_w - 32'd1) >> 1) + 32'd1 : conv_w;
    wire [63:0] n_tiles = 64'(grid_h) * 64'(grid_w);
    wire [63:0] in_c_st = in_ch_gated ? 64'(n_in) : 64'(in_c);
    wire [63:0] out_c_st = out_ch_gated ? 64'(n_out) : 64'(out_c);
    wire [63:0] in_bytes = 64'(in_h) * 64'(in_w) * in_c_st;
    wire [63:0] out_bytes = 64'(out_h) * 64'(out_w) * out_c_st;
    wire [63:0] res_bytes = 64'(out_h) * 64'(out_w) * 64'(out_c);
    wire [63:0] bitmap_bytes = 64'd4 * ((n_tiles + 64'd31) >> 5);
    wire [63:0] ct = maxpool ? 64'd2 * 64'(tile) + 64'd1 : 64'(tile);
    wire [63:0] patch_side = (ct - 64'd1) * 64'(stride) + 64'(k);
    wire [63:0] tm_eff = (64'(n_out) < 64'(TM)) ? ((n_out == 16'd0) ? 64'd1 : 64'(n_out)) : 64'(TM);

    // buffers: descriptor_buffers order; region 0 fmap, 1 weight, 2 work, 3 sums
    localparam int NBUF = 11;
    logic [NBUF-1:0] used;
    logic [31:0] boff [NBUF];
    logic [63:0] bsize [NBUF];
    logic [1:0]  bregion [NBUF];
    logic [15:0] bfield [NBUF];
    always_comb begin
        // in, out, weight, param, res, tile list, res tile list, out ch, in ch, bitmap, sums
        used = {emit_sums, zero_halo, in_ch_gated, out_ch_gated, n_res != 16'd0, tile_gated,
                residual, 1'b1, 1'b1, 1'b1, 1'b1};
        boff = '{word(9), word(10), word(12), word(13), word(11), word(14), word(15), word(16),
                 word(17), word(18), word(19)};
        bsize = '{in_bytes, out_bytes, 64'(out_c) * kk * 64'(in_c), 64'(out_c) * 64'd8, res_bytes,
                  64'd2 * 64'(n_act), 64'd2 * 64'(n_res), 64'd2 * 64'(n_out), 64'd2 * 64'(n_in),
                  bitmap_bytes, n_tiles * out_c_st * 64'd4};
        bregion = '{2'd0, 2'd0, 2'd1, 2'd1, 2'd0, 2'd2, 2'd2, 2'd2, 2'd2, 2'd2, 2'd3};
        bfield = '{16'd9, 16'd10, 16'd12, 16'd13, 16'd11, 16'd14, 16'd15, 16'd16, 16'd17, 16'd18, 16'd19};
    end
    // OFFSET_FIELDS order (field index 33..43) -> buffer slot
    localparam int OFF_SLOT [11] = '{0, 1, 4, 2, 3, 5, 6, 7, 8, 9, 10};
    localparam int OFF_SLOT_WORD [11] = '{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

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
        for (int w = 20; w < 24; w++) begin
            `DG_FAIL(word(w) != 32'd0, DG_ERR_BAD_MAGIC, 0)
        end
        `DG_FAIL(stray0 != 0, DG_ERR_BAD_MAGIC, 0)
        `DG_FAIL(stray1 != 0, DG_ERR_BAD_MAGIC, 0)
        `DG_FAIL(stray5 != 0, DG_ERR_BAD_MAGIC, 0)
        `DG_FAIL(magic != 8'(DG_DESC_MAGIC), DG_ERR_BAD_MAGIC, 0)
        `DG_FAIL(version != 8'(DG_FORMAT_VERSION), DG_ERR_BAD_MAGIC, 0)
        // validate_descriptor
        `DG_FAIL(op != 4'(DG_OP_CONV), DG_ERR_BAD_OP, 0)
        `DG_FAIL(k != 4'd1 && k != 4'd3 && k != 4'd7, DG_ERR_BAD_OP, 0)
        `DG_FAIL(stride != 2'd1 && stride != 2'd2, DG_ERR_BAD_OP, 0)
        `DG_FAIL(32'(pad) > 32'(k >> 1), DG_ERR_BAD_OP, 0)
        `DG_FAIL(shift == 5'd0, DG_ERR_BAD_OP, 1)
        `DG_FAIL(in_h == 0 || 32'(in_h) > MAX_HEIGHT, DG_ERR_BAD_SHAPE, 2)
        `DG_FAIL(out_h == 0 || 32'(out_h) > MAX_HEIGHT, DG_ERR_BAD_SHAPE, 3)
        `DG_FAIL(in_w == 0 || 32'(in_w) > MAX_WIDTH, DG_ERR_BAD_SHAPE, 2)
        `DG_FAIL(out_w == 0 || 32'(out_w) > MAX_WIDTH, DG_ERR_BAD_SHAPE, 3)
        `DG_FAIL(in_c == 0 || 32'(in_c) > MAX_IN, DG_ERR_BAD_SHAPE, 4)
        `DG_FAIL(out_c == 0 || 32'(out_c) > MAX_OUT, DG_ERR_BAD_SHAPE, 4)
        `DG_FAIL(conv_h_num < 0 || conv_w_num < 0, DG_ERR_BAD_SHAPE, 2)
        `DG_FAIL(32'(out_h) != want_out_h, DG_ERR_BAD_SHAPE, 3)
        `DG_FAIL(32'(out_w) != want_out_w, DG_ERR_BAD_SHAPE, 3)
        `DG_FAIL(relu != !out_signed, DG_ERR_BAD_FLAGS, 1)
        `DG_FAIL(res_signed && !residual, DG_ERR_BAD_FLAGS, 1)
        `DG_FAIL(residual && maxpool, DG_ERR_BAD_FLAGS, 1)
        `DG_FAIL(maxpool && (tile_gated || in_ch_gated || out_ch_gated), DG_ERR_BAD_FLAGS, 1)
        `DG_FAIL(zero_halo && !tile_gated, DG_ERR_BAD_FLAGS, 1)
        `DG_FAIL(residual && res_mult[31], DG_ERR_BAD_FLAGS, 8)
        `DG_FAIL(!residual && res_mult != 0, DG_ERR_BAD_FLAGS, 8)
        `DG_FAIL(in_place && (!residual || !tile_gated), DG_ERR_BAD_FLAGS, 1)
        `DG_FAIL(in_place && (out_ch_gated || word(10) != word(11)), DG_ERR_BAD_FLAGS, 1)
        `DG_FAIL(in_place && n_res != 0, DG_ERR_BAD_COUNT, 6)
        `DG_FAIL(tile == 0 || 32'(tile) > MAX_TILE, DG_ERR_BAD_TILE, 5)
        `DG_FAIL(grid_h == 0 || 32'(grid_h - 8'd1) * 32'(tile) >= 32'(out_h)
                 || 32'(grid_h) * 32'(tile) < 32'(out_h), DG_ERR_BAD_TILE, 5)
        `DG_FAIL(32'(grid_h) > MAX_GRID, DG_ERR_BAD_TILE, 5)
        `DG_FAIL(grid_w == 0 || 32'(grid_w - 8'd1) * 32'(tile) >= 32'(out_w)
                 || 32'(grid_w) * 32'(tile) < 32'(out_w), DG_ERR_BAD_TILE, 5)
        `DG_FAIL(32'(grid_w) > MAX_GRID, DG_ERR_BAD_TILE, 5)
        `DG_FAIL(tile_gated && 64'(n_act) > n_tiles, DG_ERR_BAD_COUNT, 6)
        `DG_FAIL(!tile_gated && 64'(n_act) != n_tiles, DG_ERR_BAD_COUNT, 6)
        `DG_FAIL(n_res != 0 && !(residual && tile_gated), DG_ERR_BAD_COUNT, 6)
        `DG_FAIL(n_res != 0 && 64'(n_act) + 64'(n_res) > n_tiles, DG_ERR_BAD_COUNT, 6)
        `DG_FAIL(out_ch_gated && n_out > out_c, DG_ERR_BAD_COUNT, 7)
        `DG_FAIL(!out_ch_gated && n_out != out_c, DG_ERR_BAD_COUNT, 7)
        `DG_FAIL(in_ch_gated && n_in > in_c, DG_ERR_BAD_COUNT, 7)
        `DG_FAIL(!in_ch_gated && n_in != in_c, DG_ERR_BAD_COUNT, 7)
        for (int i = 0; i < 11; i++) begin
            `DG_FAIL(!used[OFF_SLOT[i]] && boff[OFF_SLOT[i]] != 0, DG_ERR_BAD_OFFSET, 9 + OFF_SLOT_WORD[i])
            `DG_FAIL(boff[OFF_SLOT[i]] % AXI_BYTES != 0, DG_ERR_BAD_OFFSET, 9 + OFF_SLOT_WORD[i])
        end
        for (int b = 0; b < NBUF; b++) begin
            `DG_FAIL(used[b] && 64'(boff[b]) + bsize[b] > 64'h1_0000_0000, DG_ERR_BAD_OFFSET, bfield[b])
        end
        `DG_FAIL(overlap(64'(word(9)), in_bytes, 64'(word(10)), out_bytes), DG_ERR_BAD_OFFSET, 10)
        `DG_FAIL(residual && !in_place && overlap(64'(word(11)), res_bytes, 64'(word(10)), out_bytes),
                 DG_ERR_BAD_OFFSET, 10)
        `DG_FAIL(tm_eff * kk * 64'(n_in) > 64'(WBUF_BYTES / 2), DG_ERR_NO_FIT, 5)
        `DG_FAIL(patch_side * patch_side * in_c_st > 64'(IFM_BYTES / 2), DG_ERR_NO_FIT, 5)
        `DG_FAIL(64'(TM) * ct * ct * 64'd4 > 64'(OFM_BYTES), DG_ERR_NO_FIT, 5)
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
