`default_nettype none
// dg_tb_fast: stand-alone harness (no Python per cycle): programs dg_engine over AXI4-Lite from a register file, runs, finishes.
//
// The memory model's array is filled and read back by the C++ main (sim/tb/dg_fast_main.cpp,
// binary, only the segments of the start: +in=<bin> +out_mem=<bin>); this module never
// touches memory files. Plusargs read here: +regs=<hex: addr data per line, ends with addr
// ffffffff> +out=<result text> +timeout=<cycles> +latency=<read latency> +stall=<percent>
// +starts=<n> +trace (sequencer states on stdout); the memory model reads its error
// injection plusargs (+rd_err_port, +rd_err_addr, +wr_err_addr: sim/tb/dg_axi_mem.sv),
// armed for the first start only. The result file holds "status", "cycles" (engine CYCLES
// register), "sim_cycles", "engine_id", "timeout" and "busy_*" lines.
//
// +starts=n (default 1): n starts in one simulation, as a host runs them: after a start's
// interrupt the outputs are read, CTRL is read (ap_done clears), ISR's AP_DONE is cleared,
// and the next start writes the registers again and sets ap_start; the engine is not reset
// in between (its error flags clear at ap_start). Before each later start the memory model is
// reset (queues, stall streams, clock) and `reload` asks the C++ main to write the start's
// memory image again, so every start sees the same memory and stall stream as a start of its
// own. A start before the last writes its lines with the prefix "s<k>_" (k = 0, 1, ...); the
// last start's are unprefixed, and its memory is the one dumped. +timeout applies per start.
module dg_tb_fast
    import dg_pkg::*;   // the engine contract of the config under test (register offsets, bus width)
#(
    parameter int MEM_WORDS = 1 << 18       // memory model size in AXI words
) (
    input wire clk
);
    localparam int AW = 64;
    logic rst_n = 1'b0;
    logic [DG_AXI_DATA_BITS-1:0] dummy;
    // AXI4-Lite master signals
    logic [DG_REG_ADDR_BITS-1:0] awaddr, araddr;
    logic awvalid, wvalid, arvalid, bready, rready;
    logic [31:0] wdata;
    wire awready, wready, bvalid, arready, rvalid;
    wire [1:0] bresp, rresp;
    wire [31:0] rdata;
    // AXI4 master
    wire [0:0] awid, arid;
    wire [AW-1:0] m_awaddr, m_araddr;
    wire [7:0] m_awlen, m_arlen;
    wire [2:0] m_awsize, m_arsize, m_awprot, m_arprot;
    wire [1:0] m_awburst, m_arburst, m_bresp, m_rresp;
    wire m_awlock, m_arlock;
    wire [3:0] m_awcache, m_arcache;
    wire m_awvalid, m_awready, m_wlast, m_wvalid, m_wready, m_bvalid, m_bready;
    wire m_arvalid, m_arready, m_rlast, m_rvalid, m_rready;
    wire [DG_AXI_DATA_BITS-1:0] m_wdata, m_rdata;
    wire [DG_AXI_DATA_BITS/8-1:0] m_wstrb;
    // AXI4 read-only master (weights)
    wire [0:0] w_arid;
    wire [AW-1:0] w_araddr;
    wire [7:0] w_arlen;
    wire [2:0] w_arsize, w_arprot;
    wire [1:0] w_arburst, w_rresp;
    wire w_arlock;
    wire [3:0] w_arcache;
    wire w_arvalid, w_arready, w_rlast, w_rvalid, w_rready;
    wire [DG_AXI_DATA_BITS-1:0] w_rdata;
    wire irq;

    dg_engine dut (
        .ap_clk(clk), .ap_rst_n(rst_n),
        .s_axi_control_awaddr(awaddr), .s_axi_control_awvalid(awvalid), .s_axi_control_awready(awready),
        .s_axi_control_wdata(wdata), .s_axi_control_wstrb(4'hF), .s_axi_control_wvalid(wvalid),
        .s_axi_control_wready(wready), .s_axi_control_bresp(bresp), .s_axi_control_bvalid(bvalid),
        .s_axi_control_bready(bready), .s_axi_control_araddr(araddr), .s_axi_control_arvalid(arvalid),
        .s_axi_control_arready(arready), .s_axi_control_rdata(rdata), .s_axi_control_rresp(rresp),
        .s_axi_control_rvalid(rvalid), .s_axi_control_rready(rready),
        .m_axi_gmem_awid(awid), .m_axi_gmem_awaddr(m_awaddr), .m_axi_gmem_awlen(m_awlen),
        .m_axi_gmem_awsize(m_awsize), .m_axi_gmem_awburst(m_awburst), .m_axi_gmem_awlock(m_awlock),
        .m_axi_gmem_awcache(m_awcache), .m_axi_gmem_awprot(m_awprot), .m_axi_gmem_awvalid(m_awvalid),
        .m_axi_gmem_awready(m_awready), .m_axi_gmem_wdata(m_wdata), .m_axi_gmem_wstrb(m_wstrb),
        .m_axi_gmem_wlast(m_wlast), .m_axi_gmem_wvalid(m_wvalid), .m_axi_gmem_wready(m_wready),
        .m_axi_gmem_bid(1'b0), .m_axi_gmem_bresp(m_bresp), .m_axi_gmem_bvalid(m_bvalid),
        .m_axi_gmem_bready(m_bready), .m_axi_gmem_arid(arid), .m_axi_gmem_araddr(m_araddr),
        .m_axi_gmem_arlen(m_arlen), .m_axi_gmem_arsize(m_arsize), .m_axi_gmem_arburst(m_arburst),
        .m_axi_gmem_arlock(m_arlock), .m_axi_gmem_arcache(m_arcache), .m_axi_gmem_arprot(m_arprot),
        .m_axi_gmem_arvalid(m_arvalid), .m_axi_gmem_arready(m_arready), .m_axi_gmem_rid(1'b0),
        .m_axi_gmem_rdata(m_rdata), .m_axi_gmem_rresp(m_rresp), .m_axi_gmem_rlast(m_rlast),
        .m_axi_gmem_rvalid(m_rvalid), .m_axi_gmem_rready(m_rready),
        .m_axi_gmem_w_arid(w_arid), .m_axi_gmem_w_araddr(w_araddr), .m_axi_gmem_w_arlen(w_arlen),
        .m_axi_gmem_w_arsize(w_arsize), .m_axi_gmem_w_arburst(w_arburst), .m_axi_gmem_w_arlock(w_arlock),
        .m_axi_gmem_w_arcache(w_arcache), .m_axi_gmem_w_arprot(w_arprot), .m_axi_gmem_w_arvalid(w_arvalid),
        .m_axi_gmem_w_arready(w_arready), .m_axi_gmem_w_rid(1'b0), .m_axi_gmem_w_rdata(w_rdata),
        .m_axi_gmem_w_rresp(w_rresp), .m_axi_gmem_w_rlast(w_rlast), .m_axi_gmem_w_rvalid(w_rvalid),
        .m_axi_gmem_w_rready(w_rready), .interrupt(irq));

    logic [31:0] latency, stall_pct;
    logic reload /*verilator public_flat_rd*/;   // the C++ main writes the memory image again
    int n_starts, start_k;                         // starts to run, the current one
    dg_axi_mem #(.ADDR_W(AW), .DATA_W(DG_AXI_DATA_BITS), .MEM_WORDS(MEM_WORDS)) mem (
        .clk(clk), .rst(!rst_n || reload), .rd_latency(latency), .stall_pct(7'(stall_pct)),
        .err_arm(start_k == 0),
        .s_axi_awaddr(m_awaddr), .s_axi_awlen(m_awlen), .s_axi_awvalid(m_awvalid), .s_axi_awready(m_awready),
        .s_axi_wdata(m_wdata), .s_axi_wstrb(m_wstrb), .s_axi_wlast(m_wlast), .s_axi_wvalid(m_wvalid),
        .s_axi_wready(m_wready), .s_axi_bresp(m_bresp), .s_axi_bvalid(m_bvalid), .s_axi_bready(m_bready),
        .s_axi_araddr(m_araddr), .s_axi_arlen(m_arlen), .s_axi_arvalid(m_arvalid), .s_axi_arready(m_arready),
        .s_axi_rdata(m_rdata), .s_axi_rresp(m_rresp), .s_axi_rlast(m_rlast), .s_axi_rvalid(m_rvalid),
        .s_axi_rready(m_rready),
        .s_axi_w_araddr(w_araddr), .s_axi_w_arlen(w_arlen), .s_axi_w_arvalid(w_arvalid),
        .s_axi_w_arready(w_arready), .s_axi_w_rdata(w_rdata), .s_axi_w_rresp(w_rresp),
        .s_axi_w_rlast(w_rlast), .s_axi_w_rvalid(w_rvalid), .s_axi_w_rready(w_rready));

    // ---- register program
    logic [31:0] regs [256];
    string regs_file, out_file;
    logic [63:0] timeout, cyc, t0;
    int step, ri;
    logic [31:0] status_v, cyc_lo, cyc_hi, id_lo, id_hi;
    initial begin
        if (!$value$plusargs("regs=%s", regs_file)) regs_file = "regs.hex";
        if (!$value$plusargs("out=%s", out_file)) out_file = "result.txt";
        if (!$value$plusargs("timeout=%d", timeout)) timeout = 64'd10_000_000;
        if (!$value$plusargs("latency=%d", latency)) latency = 32'd0;
        if (!$value$plusargs("stall=%d", stall_pct)) stall_pct = 32'd0;
        if (!$value$plusargs("starts=%d", n_starts)) n_starts = 1;
        for (int i = 0; i < 256; i++) regs[i] = 32'hFFFF_FFFF;
        $readmemh(regs_file, regs);
    end

    // sequencer: reset, write (addr, data) pairs, start, wait for the interrupt, read outputs
    task automatic write_result(input bit to, input string pre);
        int fd;
        fd = $fopen(out_file, start_k == 0 ? "w" : "a");
        $fdisplay(fd, "%sstatus %0d", pre, to ? -1 : int'(status_v));
        $fdisplay(fd, "%scycles %0d", pre, {cyc_hi, cyc_lo});
        $fdisplay(fd, "%ssim_cycles %0d", pre, cyc - t0);
        $fdisplay(fd, "%sengine_id %0d", pre, {id_hi, id_lo});
        $fdisplay(fd, "%stimeout %0d", pre, to ? 1 : 0);
        $fdisplay(fd, "%sbusy_mac %0d", pre, n_mac);
        $fdisplay(fd, "%sbusy_wait_prefetch %0d", pre, n_wait_pf);
        $fdisplay(fd, "%sbusy_wait_weights %0d", pre, n_wait_w);
        $fdisplay(fd, "%sbusy_wait_writeback %0d", pre, n_wait_wb);
        $fdisplay(fd, "%sbusy_other %0d", pre, n_other);
        $fdisplay(fd, "%sbusy_loader %0d", pre, n_ld);
        $fclose(fd);
    endtask
    task automatic finish_run(input bit to);
        write_result(to, "");
        $finish;
    endtask

    always_ff @(posedge clk) begin
        cyc <= cyc + 64'd1;
        reload <= 1'b0;
        awvalid <= 1'b0; wvalid <= 1'b0; arvalid <= arvalid && !arready; bready <= 1'b1; rready <= 1'b1;
        case (step)
            0: begin if (cyc > 8) begin rst_n <= 1'b1; step <= 1; ri <= 0; end end
            1: begin
                // write the next pair, or start
                if (regs[2*ri] == 32'hFFFF_FFFF) begin
                    awaddr <= DG_REG_ADDR_BITS'(DG_REG_CTRL); wdata <= 32'(1 << DG_REG_CTRL_AP_START_LSB); awvalid <= 1'b1; wvalid <= 1'b1; step <= 3;
                end else begin
                    awaddr <= DG_REG_ADDR_BITS'(regs[2*ri]); wdata <= regs[2*ri+1]; awvalid <= 1'b1; wvalid <= 1'b1;
                    step <= 2;
                end
            end
            2: begin if (bvalid) begin ri <= ri + 1; step <= 1; end end
            3: begin if (bvalid) step <= 4; end
            4: begin if (irq) begin araddr <= DG_REG_ADDR_BITS'(DG_REG_STATUS); arvalid <= 1'b1; step <= 5; end end
            5: begin if (rvalid) begin status_v <= rdata; araddr <= DG_REG_ADDR_BITS'(DG_REG_CYCLES_LO); arvalid <= 1'b1; step <= 6; end end
            6: begin if (rvalid) begin cyc_lo <= rdata; araddr <= DG_REG_ADDR_BITS'(DG_REG_CYCLES_HI); arvalid <= 1'b1; step <= 7; end end
            7: begin if (rvalid) begin cyc_hi <= rdata; araddr <= DG_REG_ADDR_BITS'(DG_REG_ENGINE_ID_LO); arvalid <= 1'b1; step <= 8; end end
            8: begin if (rvalid) begin id_lo <= rdata; araddr <= DG_REG_ADDR_BITS'(DG_REG_ENGINE_ID_HI); arvalid <= 1'b1; step <= 9; end end
            9: begin if (rvalid) begin id_hi <= rdata; step <= 10; end end
            10: begin
                if (start_k + 1 >= n_starts) finish_run(1'b0);
                else begin
                    // as the host: CTRL read (ap_done clears), the interrupt cleared
                    write_result(1'b0, $sformatf("s%0d_", start_k));
                    araddr <= DG_REG_ADDR_BITS'(DG_REG_CTRL); arvalid <= 1'b1; step <= 11;
                end
            end
            11: begin
                if (rvalid) begin
                    awaddr <= DG_REG_ADDR_BITS'(DG_REG_ISR); wdata <= 32'(1 << DG_REG_ISR_AP_DONE_LSB);
                    awvalid <= 1'b1; wvalid <= 1'b1; step <= 12;
                end
            end
            12: begin
                if (bvalid) begin
                    // the next start: memory image and memory model as at the first
                    reload <= 1'b1;
                    start_k <= start_k + 1;
                    t0 <= cyc + 64'd1;
                    ri <= 0;
                    step <= 13;
                end
            end
            13: step <= 1;
            default: ;
        endcase
        if (cyc - t0 >= timeout && step != 10) finish_run(1'b1);
    end
    initial begin cyc = 0; t0 = 0; step = 0; arvalid = 1'b0; start_k = 0; reload = 1'b0; end
    // cycle breakdown while the engine runs (written to the result file)
    logic [63:0] n_mac, n_wait_pf, n_wait_w, n_wait_wb, n_other, n_ld;
    always_ff @(posedge clk) begin
        if (!rst_n || reload) begin
            n_mac <= 0; n_wait_pf <= 0; n_wait_w <= 0; n_wait_wb <= 0; n_other <= 0; n_ld <= 0;
        end else if (!dut.u_seq.idle) begin
            if (dut.u_ld.ld_busy) n_ld <= n_ld + 1;
            if (dut.u_cp.cp_issue) n_mac <= n_mac + 1;
            else if (dut.run && dut.u_cp.cp_state == 2'd0 && !dut.full[dut.cp_h]) n_wait_pf <= n_wait_pf + 1;
            else if (dut.run && dut.u_cp.cp_state == 2'd0) n_wait_w <= n_wait_w + 1;
            else if (dut.run && dut.u_cp.cp_state == 2'd1) n_wait_wb <= n_wait_wb + 1;
            else n_other <= n_other + 1;
        end
    end
    // +trace: sequencer state changes (debug aid)
    bit trace;
    logic [4:0] prev_state;
    initial trace = $test$plusargs("trace");
    always_ff @(posedge clk) begin
        prev_state <= dut.u_seq.state;
        if (trace && (dut.u_seq.state != prev_state || cyc % 2000 == 0))
            $display("%0d state=%0d layer=%0d pfg=%0d pf=%0d pfi=%0d full=%b cp=%0d wbq=%0d ldg=%0d gdone=%0d",
                     cyc, dut.u_seq.state, dut.u_seq.layer, dut.u_ld.pf_g, dut.u_ld.pf_state,
                     dut.u_ld.pf_i, dut.full, dut.u_cp.cp_state, dut.wbq_count, dut.u_ld.ld_g,
                     dut.wb_gdone);
    end
    wire unused_ok = &{1'b0, awid, arid, m_awsize, m_arsize, m_awprot, m_arprot, m_awburst, m_arburst,
                       m_awlock, m_arlock, m_awcache, m_arcache, bresp, rresp, dummy, awready, wready, arready,
                       w_arid, w_arsize, w_arprot, w_arburst, w_arlock, w_arcache, w_rresp};
endmodule
`default_nettype wire
