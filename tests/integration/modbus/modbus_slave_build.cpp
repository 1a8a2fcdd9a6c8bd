// The test server lives in tools/sim (the simulator uses it too), which is not a library the
// tests link; compiling it into this test program keeps the tests on the very same code.
#include "tools/sim/modbus_slave.cpp"
