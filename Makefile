# ironcd — `make run` and `make test` do all set-up on a Debian/Ubuntu machine.
#
# RocksDB's C++ build takes ~30 min on 2 cores. It happens once per machine:
# the `rocksdb` target builds librocksdb-sys the ordinary way, then keeps the
# static library (debug info stripped) in $(ROCKSDB_LIB_DIR); every later
# cargo run links that library instead of compiling RocksDB again. Without
# this, any change in the feature set of the build-time dependencies (which
# differs between `cargo build`, `cargo test` and `-p` selections) gives
# librocksdb-sys's build script a new hash and recompiles all of RocksDB.
#
# One optimised cargo profile (release) serves tests, benchmarks and the
# binary. The target directory lives outside the clone, so a fresh clone on
# the same machine (CI) reuses it.

CARGO ?= cargo
CARGO_TARGET_DIR ?= $(HOME)/.cache/ironcd/target
export CARGO_TARGET_DIR

ROCKSDB_SYS_VERSION := $(shell sed -n '/^name = "librocksdb-sys"$$/{n;s/^version = "\(.*\)"$$/\1/p}' Cargo.lock)
# The suffix names the compression features in Cargo.toml's rocksdb entry:
# change it together with them.
ROCKSDB_LIB_DIR ?= $(HOME)/.cache/ironcd/rocksdb-$(ROCKSDB_SYS_VERSION)-lz4
ROCKSDB_STATIC := 1
export ROCKSDB_LIB_DIR ROCKSDB_STATIC

# System packages the build needs: libclang for RocksDB's bindgen, protoc for
# the proto crates; the tests also run etcd 3.4 and etcdctl (the reference
# ironcd is compared with) and curl.
SYSTEM_PACKAGES := libclang-dev protobuf-compiler etcd-server etcd-client curl

.PHONY: all deps rocksdb build test run bench bench-compare robustness lint fmt clean

all: build

deps:
	@missing=""; \
	for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		$$sudo apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi; \
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then \
		echo "stopping the etcd service Debian started (it holds port 2379)"; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; $$sudo systemctl disable --now etcd; \
	fi

# Builds RocksDB from source once, with the features ironcd-backend asks for.
rocksdb: deps
	@if [ ! -f "$(ROCKSDB_LIB_DIR)/librocksdb.a" ]; then \
		echo "building RocksDB $(ROCKSDB_SYS_VERSION) once (~30 min on 2 cores)"; \
		env -u ROCKSDB_LIB_DIR -u ROCKSDB_STATIC $(CARGO) build --release -p ironcd-backend --lib && \
		built=$$(ls -t "$(CARGO_TARGET_DIR)"/release/build/librocksdb-sys-*/out/librocksdb.a | head -n 1) && \
		mkdir -p "$(ROCKSDB_LIB_DIR)" && \
		strip --strip-debug -o "$(ROCKSDB_LIB_DIR)/librocksdb.a.tmp" "$$built" && \
		mv "$(ROCKSDB_LIB_DIR)/librocksdb.a.tmp" "$(ROCKSDB_LIB_DIR)/librocksdb.a"; \
	fi

build: rocksdb
	$(CARGO) build --release --workspace

# The workspace, then what needs ironcd built with failpoints: their own
# tests and the robustness regressions that arm them.
test: rocksdb
	$(CARGO) test --release --workspace
	$(CARGO) test --release -p ironcd-server --features failpoints --test failpoints
	$(CARGO) test --release -p ironcd-server --features failpoints --test robustness -- with_failpoints

# A single member with etcd's defaults: clients on 127.0.0.1:2379, peers on
# 2380, data in ./default.ironcd. Extra etcd flags: make run ARGS='--name x'.
run: rocksdb
	$(CARGO) build --release -p ironcd-server --bin ironcd
	exec "$(CARGO_TARGET_DIR)/release/ironcd" --listen-client-urls http://127.0.0.1:2379 \
		--advertise-client-urls http://127.0.0.1:2379 $(ARGS)

bench: rocksdb
	$(CARGO) bench --workspace

# etcd 3.4 and ironcd side by side (fresh clusters, 1 and 3 members, then a
# fill of 1 M keys); rewrites the bench-compare section of BENCHMARKS.md.
# A smoke run: make bench-compare ARGS='--quick --out /tmp/compare.md'
bench-compare: rocksdb
	$(CARGO) build --release -p ironcd-server -p ironcd-bench --bins
	"$(CARGO_TARGET_DIR)/release/bench-compare" --out BENCHMARKS.md $(ARGS)

# The robustness matrix: every scenario (fault x traffic x cluster size)
# over 50 seeds; `make test` runs a fixed sample of it. A failed run keeps
# its cluster's directory and names the seed that reproduces it:
# make robustness IRONCD_ROBUSTNESS_SCENARIO=3m-kill-etcd IRONCD_ROBUSTNESS_SEED=7
# (IRONCD_ROBUSTNESS_SEEDS, _FIRST_SEED and _SERVER=etcd: see
# crates/server/tests/robustness.rs.)
robustness: rocksdb
	$(CARGO) test --release -p ironcd-server --features failpoints --test robustness -- --ignored matrix --nocapture

lint: rocksdb
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
