// SPDX-License-Identifier: MIT
// moelab/io/gguf_writer.hpp — write a GGUF file (the layout gguf.hpp reads).
//
// Depends on: moelab/io/ggml_types.hpp, moelab/dtype.hpp, moelab/error.hpp, the standard library.
//
// Used to make synthetic models that moelab and llama.cpp can both load
// (`moelab synth`), so that speed comparisons run on the same file. Tensor
// data is produced by a callback while the file is written, one tensor at a
// time, so a model of many gigabytes never has to sit in memory. Output: GGUF
// v3, little-endian (the host's order, checked below), alignment 32.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "moelab/dtype.hpp"
#include "moelab/error.hpp"
#include "moelab/io/ggml_types.hpp"

namespace moelab::io {

static_assert(std::endian::native == std::endian::little, "GGUFWriter writes host byte order");

// The ggml type id that stores `dtype`.
inline std::uint32_t ggml_type_id(DType dtype) {
    for (const GGMLTypeInfo& t : ggml_type_table)
        if (t.dtype == dtype) return t.id;
    throw Error("gguf writer", "no ggml type for dtype " + std::string(dtype_name(dtype)));
}

class GGUFWriter {
public:
    // Fills the tensor's bytes (exactly its size) when the file is written.
    using Fill = std::function<void(std::byte* out, std::size_t bytes)>;

    void add_u32(const std::string& key, std::uint32_t v) { add_scalar(key, 4, v); }
    void add_i32(const std::string& key, std::int32_t v) { add_scalar(key, 5, v); }
    void add_f32(const std::string& key, float v) { add_scalar(key, 6, v); }
    void add_bool(const std::string& key, bool v) { add_scalar(key, 7, static_cast<std::uint8_t>(v)); }
    void add_string(const std::string& key, const std::string& v) {
        begin_kv(key, 8);
        put_string(v);
    }
    void add_string_array(const std::string& key, const std::vector<std::string>& values) {
        begin_kv(key, 9);
        put(std::uint32_t{8});
        put(static_cast<std::uint64_t>(values.size()));
        for (const auto& v : values) put_string(v);
    }
    void add_i32_array(const std::string& key, const std::vector<std::int32_t>& values) {
        begin_kv(key, 9);
        put(std::uint32_t{5});
        put(static_cast<std::uint64_t>(values.size()));
        for (auto v : values) put(v);
    }

    // A tensor of `shape` (outermost first, as everywhere in moelab) stored as `dtype`.
    void add_tensor(std::string name, std::vector<std::uint64_t> shape, DType dtype, Fill fill) {
        if (shape.empty() || shape.size() > 4) throw Error("gguf writer", "tensor '" + name + "': 1 to 4 dimensions");
        const DTypeTraits tr = dtype_traits(dtype);
        if (shape.back() % tr.block_elems != 0)
            throw Error("gguf writer", "tensor '" + name + "': rows must hold whole " + std::string(tr.name) + " blocks");
        std::uint64_t bytes = shape.back() / tr.block_elems * tr.block_bytes;
        for (std::size_t i = 0; i + 1 < shape.size(); ++i) bytes *= shape[i];
        tensors_.push_back({std::move(name), std::move(shape), dtype, bytes, std::move(fill)});
    }

    void write(const std::filesystem::path& path) const {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        if (!out) throw Error(path.string(), "cannot open for writing");
        std::vector<std::byte> header;
        auto raw = [&](const void* p, std::size_t n) {
            header.insert(header.end(), static_cast<const std::byte*>(p), static_cast<const std::byte*>(p) + n);
        };
        raw("GGUF", 4);
        const std::uint32_t version = 3;
        const std::uint64_t n_tensors = tensors_.size(), n_kv = n_kv_;
        raw(&version, 4), raw(&n_tensors, 8), raw(&n_kv, 8);
        header.insert(header.end(), kv_.begin(), kv_.end());
        std::uint64_t offset = 0;
        for (const auto& t : tensors_) {
            const std::uint64_t name_len = t.name.size();
            raw(&name_len, 8), raw(t.name.data(), t.name.size());
            const std::uint32_t n_dims = static_cast<std::uint32_t>(t.shape.size());
            raw(&n_dims, 4);
            for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) raw(&*it, 8);  // ne: innermost first
            const std::uint32_t type = ggml_type_id(t.dtype);
            raw(&type, 4), raw(&offset, 8);
            offset += padded(t.bytes);
        }
        header.resize(padded(header.size()));
        out.write(reinterpret_cast<const char*>(header.data()), static_cast<std::streamsize>(header.size()));
        std::vector<std::byte> buffer;
        for (const auto& t : tensors_) {
            buffer.assign(padded(t.bytes), std::byte{0});
            t.fill(buffer.data(), t.bytes);
            out.write(reinterpret_cast<const char*>(buffer.data()), static_cast<std::streamsize>(buffer.size()));
        }
        if (!out) throw Error(path.string(), "write failed");
    }

private:
    struct Tensor {
        std::string name;
        std::vector<std::uint64_t> shape;
        DType dtype;
        std::uint64_t bytes;
        Fill fill;
    };
    static constexpr std::uint64_t kAlignment = 32;
    static std::uint64_t padded(std::uint64_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

    template <class T>
    void put(T v) {
        const auto* p = reinterpret_cast<const std::byte*>(&v);
        kv_.insert(kv_.end(), p, p + sizeof(T));
    }
    void put_string(const std::string& s) {
        put(static_cast<std::uint64_t>(s.size()));
        kv_.insert(kv_.end(), reinterpret_cast<const std::byte*>(s.data()), reinterpret_cast<const std::byte*>(s.data()) + s.size());
    }
    void begin_kv(const std::string& key, std::uint32_t type) {
        put_string(key);
        put(type);
        ++n_kv_;
    }
    template <class T>
    void add_scalar(const std::string& key, std::uint32_t type, T v) {
        begin_kv(key, type);
        put(v);
    }

    std::vector<std::byte> kv_;
    std::uint64_t n_kv_ = 0;
    std::vector<Tensor> tensors_;
};

}  // namespace moelab::io
