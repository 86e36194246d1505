`default_nettype none
// dg_axil_regs: AXI4-Lite slave implementing the engine register map (dgfpga.regmap, ap_ctrl_hs).
//
// Offsets come from sim/generated/dg_params.svh (generated from dgfpga/contract/regmap.py).
// CTRL: ap_start is set by writing 1 and cleared when the engine accepts (ap_ready);
// ap_done and ap_ready are sticky and cleared when CTRL is read; ap_idle mirrors the
// engine. GIE/IER are plain RW; ISR bits are set by the enabled events and toggled by
// writing 1. Output arguments (STATUS, CYCLES, ENGINE_ID) latch on their ap_vld pulse
// and their *_CTRL[0] (ap_vld) clears when that control word is read.
module dg_axil_regs
    import dg_pkg::*;                // register offsets and fields (dg_pkg.sv)
#(
    parameter int ADDR_W = DG_REG_ADDR_BITS  // s_axi_control address width, >= DG_REG_ADDR_BITS
) (
    input  wire          clk,
    input  wire          rst,
    // AXI4-Lite slave
    input  wire [ADDR_W-1:0] s_axil_awaddr,
    input  wire          s_axil_awvalid,
    output wire          s_axil_awready,
    input  wire [31:0]   s_axil_wdata,
    input  wire [3:0]    s_axil_wstrb,
    input  wire          s_axil_wvalid,
    output wire          s_axil_wready,
    output wire [1:0]    s_axil_bresp,
    output wire          s_axil_bvalid,
    input  wire          s_axil_bready,
    input  wire [ADDR_W-1:0] s_axil_araddr,
    input  wire          s_axil_arvalid,
    output wire          s_axil_arready,
    output wire [31:0]   s_axil_rdata,
    output wire [1:0]    s_axil_rresp,
    output wire          s_axil_rvalid,
    input  wire          s_axil_rready,
    // engine handshake (ap_ctrl_hs)
    output wire          ap_start,
    input  wire          ap_done,        // one-cycle pulse
    input  wire          ap_ready,       // one-cycle pulse: arguments consumed
    input  wire          ap_idle,
    // input arguments
    output wire [63:0]   arg_program,
    output wire [31:0]   arg_layer_count,
    output wire [63:0]   arg_fmap_base,
    output wire [31:0]   arg_fmap_bytes,
    output wire [63:0]   arg_weight_base,
    output wire [31:0]   arg_weight_bytes,
    output wire [63:0]   arg_work_base,
    output wire [31:0]   arg_work_bytes,
    output wire [63:0]   arg_sums_base,
    output wire [31:0]   arg_sums_bytes,
    output wire [31:0]   arg_run_flags,
    // output arguments
    input  wire [31:0]   out_status,
    input  wire          out_status_vld,
    input  wire [63:0]   out_cycles,
    input  wire          out_cycles_vld,
    input  wire [63:0]   out_engine_id,
    input  wire          out_engine_id_vld,
    output wire          irq
);
`include "dg_fields.svh"
    if (ADDR_W < DG_REG_ADDR_BITS) begin : g_chk_addr
        $error("dg_axil_regs: ADDR_W smaller than the register map needs");
    end

    // ---- control state ----
    logic ap_start_reg, ap_done_reg, ap_ready_reg, auto_restart_reg;
    logic gie_reg;
    logic ier_done, ier_ready, isr_done, isr_ready;   // IER / ISR bits AP_DONE, AP_READY
    logic [31:0] args_reg [16];   // argument words, index = (offset - 0x10) / 4 for inputs
    logic [31:0] status_reg;
    logic [63:0] cycles_reg, engine_id_reg;
    logic status_vld_reg, cycles_vld_reg, engine_id_vld_reg;

    // ---- write channel: take AW and W together ----
    logic bvalid_reg;
    wire w_fire = s_axil_awvalid && s_axil_wvalid && !bvalid_reg;
    assign s_axil_awready = w_fire;
    assign s_axil_wready = w_fire;
    assign s_axil_bvalid = bvalid_reg;
    assign s_axil_bresp = 2'b00;
    wire [7:0] waddr = 8'({s_axil_awaddr[ADDR_W-1:2], 2'b00});

    function automatic logic [31:0] merge(input logic [31:0] old, input logic [31:0] data,
                                          input logic [3:0] strb);
        for (int i = 0; i < 4; i++) if (strb[i]) old[8*i +: 8] = data[8*i +: 8];
        return old;
    endfunction

    function automatic int arg_index(input logic [7:0] a);
        // input argument words (regmap: 64-bit args take lo, hi; 32-bit args one word)
        case (a)
            8'(DG_REG_PROGRAM_LO):     return 0;
            8'(DG_REG_PROGRAM_HI):     return 1;
            8'(DG_REG_LAYER_COUNT):    return 2;
            8'(DG_REG_FMAP_BASE_LO):   return 3;
            8'(DG_REG_FMAP_BASE_HI):   return 4;
            8'(DG_REG_FMAP_BYTES):     return 5;
            8'(DG_REG_WEIGHT_BASE_LO): return 6;
            8'(DG_REG_WEIGHT_BASE_HI): return 7;
            8'(DG_REG_WEIGHT_BYTES):   return 8;
            8'(DG_REG_WORK_BASE_LO):   return 9;
            8'(DG_REG_WORK_BASE_HI):   return 10;
            8'(DG_REG_WORK_BYTES):     return 11;
            8'(DG_REG_SUMS_BASE_LO):   return 12;
            8'(DG_REG_SUMS_BASE_HI):   return 13;
            8'(DG_REG_SUMS_BYTES):     return 14;
            8'(DG_REG_RUN_FLAGS):      return 15;
            default:                   return -1;
        endcase
    endfunction

    assign arg_program      = {args_reg[1], args_reg[0]};
    assign arg_layer_count  = args_reg[2];
    assign arg_fmap_base    = {args_reg[4], args_reg[3]};
    assign arg_fmap_bytes   = args_reg[5];
    assign arg_weight_base  = {args_reg[7], args_reg[6]};
    assign arg_weight_bytes = args_reg[8];
    assign arg_work_base    = {args_reg[10], args_reg[9]};
    assign arg_work_bytes   = args_reg[11];
    assign arg_sums_base    = {args_reg[13], args_reg[12]};
    assign arg_sums_bytes   = args_reg[14];
    assign arg_run_flags    = args_reg[15];

    // ---- read channel ----
    logic rvalid_reg;
    logic [31:0] rdata_reg;
    wire r_fire = s_axil_arvalid && !rvalid_reg;
    assign s_axil_arready = r_fire;
    assign s_axil_rvalid = rvalid_reg;
    assign s_axil_rdata = rdata_reg;
    assign s_axil_rresp = 2'b00;
    wire [7:0] raddr = 8'({s_axil_araddr[ADDR_W-1:2], 2'b00});

    logic [31:0] rmux;
    always_comb begin
        rmux = 32'd0;
        case (raddr)
            8'(DG_REG_CTRL): begin
                `DG_REG_FIELD(rmux, CTRL, AP_START) = ap_start_reg;
                `DG_REG_FIELD(rmux, CTRL, AP_DONE) = ap_done_reg;
                `DG_REG_FIELD(rmux, CTRL, AP_IDLE) = ap_idle;
                `DG_REG_FIELD(rmux, CTRL, AP_READY) = ap_ready_reg;
                `DG_REG_FIELD(rmux, CTRL, AUTO_RESTART) = auto_restart_reg;
            end
            8'(DG_REG_GIE): `DG_REG_FIELD(rmux, GIE, ENABLE) = gie_reg;
            8'(DG_REG_IER): begin
                `DG_REG_FIELD(rmux, IER, AP_DONE) = ier_done;
                `DG_REG_FIELD(rmux, IER, AP_READY) = ier_ready;
            end
            8'(DG_REG_ISR): begin
                `DG_REG_FIELD(rmux, ISR, AP_DONE) = isr_done;
                `DG_REG_FIELD(rmux, ISR, AP_READY) = isr_ready;
            end
            8'(DG_REG_STATUS): rmux = status_reg;
            8'(DG_REG_STATUS_CTRL): `DG_REG_FIELD(rmux, STATUS_CTRL, AP_VLD) = status_vld_reg;
            8'(DG_REG_CYCLES_LO): rmux = cycles_reg[31:0];
            8'(DG_REG_CYCLES_HI): rmux = cycles_reg[63:32];
            8'(DG_REG_CYCLES_CTRL): `DG_REG_FIELD(rmux, CYCLES_CTRL, AP_VLD) = cycles_vld_reg;
            8'(DG_REG_ENGINE_ID_LO): rmux = engine_id_reg[31:0];
            8'(DG_REG_ENGINE_ID_HI): rmux = engine_id_reg[63:32];
            8'(DG_REG_ENGINE_ID_CTRL): `DG_REG_FIELD(rmux, ENGINE_ID_CTRL, AP_VLD) = engine_id_vld_reg;
            default: if (arg_index(raddr) >= 0) rmux = args_reg[arg_index(raddr)];
        endcase
    end

    assign ap_start = ap_start_reg;
    assign irq = gie_reg && (isr_done || isr_ready);

    always_ff @(posedge clk) begin
        if (r_fire) rdata_reg <= rmux;
        if (w_fire && arg_index(waddr) >= 0)
            args_reg[arg_index(waddr)] <= merge(args_reg[arg_index(waddr)], s_axil_wdata, s_axil_wstrb);
        if (out_status_vld) status_reg <= out_status;
        if (out_cycles_vld) cycles_reg <= out_cycles;
        if (out_engine_id_vld) engine_id_reg <= out_engine_id;
        if (rst) begin
            bvalid_reg <= 1'b0;
            rvalid_reg <= 1'b0;
            ap_start_reg <= 1'b0;
            ap_done_reg <= 1'b0;
            ap_ready_reg <= 1'b0;
            auto_restart_reg <= 1'b0;
            gie_reg <= 1'b0;
            ier_done <= 1'b0;
            ier_ready <= 1'b0;
            isr_done <= 1'b0;
            isr_ready <= 1'b0;
            status_vld_reg <= 1'b0;
            cycles_vld_reg <= 1'b0;
            engine_id_vld_reg <= 1'b0;
            for (int i = 0; i < 16; i++) args_reg[i] <= 32'd0;
            status_reg <= 32'd0;
            cycles_reg <= 64'd0;
            engine_id_reg <= 64'd0;
        end else begin
            // handshakes
            if (w_fire) bvalid_reg <= 1'b1;
            else if (s_axil_bready) bvalid_reg <= 1'b0;
            if (r_fire) rvalid_reg <= 1'b1;
            else if (s_axil_rready) rvalid_reg <= 1'b0;
            // CTRL
            if (ap_ready && !auto_restart_reg) ap_start_reg <= 1'b0;
            if (w_fire && waddr == 8'(DG_REG_CTRL) && s_axil_wstrb[0]) begin
                if (`DG_REG_FIELD(s_axil_wdata, CTRL, AP_START) != 0) ap_start_reg <= 1'b1;
                auto_restart_reg <= `DG_REG_FIELD(s_axil_wdata, CTRL, AUTO_RESTART);
            end
            if (r_fire && raddr == 8'(DG_REG_CTRL)) begin
                ap_done_reg <= 1'b0;
                ap_ready_reg <= 1'b0;
            end
            if (ap_done) ap_done_reg <= 1'b1;
            if (ap_ready) ap_ready_reg <= 1'b1;
            // interrupts
            if (w_fire && waddr == 8'(DG_REG_GIE) && s_axil_wstrb[0]) gie_reg <= `DG_REG_FIELD(s_axil_wdata, GIE, ENABLE);
            if (w_fire && waddr == 8'(DG_REG_IER) && s_axil_wstrb[0]) begin
                ier_done <= `DG_REG_FIELD(s_axil_wdata, IER, AP_DONE);
                ier_ready <= `DG_REG_FIELD(s_axil_wdata, IER, AP_READY);
            end
            if (w_fire && waddr == 8'(DG_REG_ISR) && s_axil_wstrb[0]) begin
                isr_done <= isr_done ^ `DG_REG_FIELD(s_axil_wdata, ISR, AP_DONE);
                isr_ready <= isr_ready ^ `DG_REG_FIELD(s_axil_wdata, ISR, AP_READY);
            end
            if (ier_done && ap_done) isr_done <= 1'b1;
            if (ier_ready && ap_ready) isr_ready <= 1'b1;
            // output ap_vld flags: clear on read of the control word, set by the engine
            if (r_fire && raddr == 8'(DG_REG_STATUS_CTRL)) status_vld_reg <= 1'b0;
            if (r_fire && raddr == 8'(DG_REG_CYCLES_CTRL)) cycles_vld_reg <= 1'b0;
            if (r_fire && raddr == 8'(DG_REG_ENGINE_ID_CTRL)) engine_id_vld_reg <= 1'b0;
            if (out_status_vld) status_vld_reg <= 1'b1;
            if (out_cycles_vld) cycles_vld_reg <= 1'b1;
            if (out_engine_id_vld) engine_id_vld_reg <= 1'b1;
        end
    end
    wire unused_ok = &{1'b0, s_axil_awaddr[1:0], s_axil_araddr[1:0], s_axil_wstrb[3:1]};
endmodule
`default_nettype wire
