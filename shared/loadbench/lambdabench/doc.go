// Package lambdabench measures kve's proxy function the way Lambda runs
// it, on this machine: the bootstrap under the AWS Lambda Runtime Interface
// Emulator, with its AWS clients pointed at local emulators. It is a test
// gated by KVE_LOADBENCH=1 (see ../README.md); it lives apart from
// loadbench so that the load benchmark's own tests do not depend on the AWS
// backends.
package lambdabench
