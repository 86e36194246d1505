// dg_fast_main: C++ main of the fast RTL harness (sim/tb/dg_tb_fast.sv): toggles the clock until $finish.
#include <memory>
#include "Vdg_tb_fast.h"
#include "verilated.h"

int main(int argc, char** argv) {
    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
    auto top = std::make_unique<Vdg_tb_fast>(ctx.get());
    top->clk = 0;
    while (!ctx->gotFinish()) {
        top->clk = !top->clk;
        top->eval();
        ctx->timeInc(5);
    }
    top->final();
    return 0;
}
