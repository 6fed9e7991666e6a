// SPDX-License-Identifier: MIT
// moelab/io/gguf.hpp — read a GGUF file (llama.cpp's model format), trusting nothing.
//
// Depends on: moelab/io/{mapped_file,untrusted_bytes,tensor_entry,ggml_types,gguf_value}.hpp,
//             moelab/error.hpp, the standard library.
//
// THE BYTE LAYOUT this reader parses (GGUF versions 2 and 3; all integers
// little-endian; a "string" is a u64 byte length followed by that many bytes,
// no terminator):
//
//   1. magic          4 bytes, "GGUF"
//   2. version        u32: 2 or 3 (they differ only in that v3 allows a
//                     big-endian variant, which this reader rejects; v1 had
//                     32-bit counts and is rejected too)
//   3. tensor_count   u64
//   4. metadata_count u64
//   5. metadata_count key/value pairs, each:
//        key    string (e.g. "general.architecture"; unique)
//        type   u32 value type, 0..12 (see gguf_value.hpp)
//        value  the fixed-size scalar (1, 2, 4 or 8 bytes; a bool is one
//               byte, 0 or 1), or a string, or an array:
//               u32 element type, u64 count, then count values of that type
//               (arrays of arrays allowed; this reader stops at depth 8)
//   6. tensor_count tensor infos, each:
//        name    string (unique)
//        n_dims  u32, 1..4
//        ne      n_dims x u64, INNERMOST FIRST: ne[0] is the length of a row
//                (the reader reverses ne into TensorEntry::shape, outermost first)
//        type    u32 ggml type id (ggml_types.hpp)
//        offset  u64, where the tensor's data starts, relative to the data
//                section (7); a multiple of the alignment
//   7. padding to the next multiple of the alignment, then the data section.
//      The alignment is the metadata key general.alignment (a non-zero power of
//      two) or 32 when absent. A tensor occupies
//      (ne[0] / block_elems) * block_bytes * ne[1] * ne[2] * ne[3] bytes.
//
// What is checked, before any use: every length and count against the bytes
// that remain (so no allocation is ever sized by an unchecked number), every
// sum and product for 64-bit overflow, keys and tensor names for emptiness,
// length (<= 65535), UTF-8 and duplicates, array nesting (<= 8) and the total
// of array elements (<= 2^23, which bounds memory), n_dims, each dimension
// (>= 1), the element count (< 2^63), the type id, ne[0] against the type's
// block, the alignment, each tensor's offset alignment and [begin, end) inside
// the file, and that no two tensors' bytes overlap. Every failure is a
// moelab::Error that names the file, the key or tensor, and the problem.
//
// (This header runs past 600 lines because it is the whole format in one
// place: layout, parser and the split-file logic read in that order.)
//
// Split models: llama.cpp's gguf-split writes NAME-00001-of-00003.gguf,
// NAME-00002-of-00003.gguf, ... each carrying the keys split.count (number of
// files), split.no (0-based index of this file) and split.tensors.count (all
// tensors in the set). Given any one of them, GGUFFile opens all and merges
// their tensors; metadata comes from the first split.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "moelab/error.hpp"
#include "moelab/io/ggml_types.hpp"
#include "moelab/io/gguf_value.hpp"
#include "moelab/io/mapped_file.hpp"
#include "moelab/io/tensor_entry.hpp"
#include "moelab/io/untrusted_bytes.hpp"

namespace moelab::io {

// TensorEntry::data points at little-endian bytes as stored; a big-endian host
// would need a converting copy, which this zero-copy reader does not make.
static_assert(std::endian::native == std::endian::little, "moelab's file readers need a little-endian host");

namespace detail {

inline constexpr int gguf_max_array_depth = 8;
inline constexpr std::uint32_t gguf_max_dims = 4;
inline constexpr std::uint64_t gguf_default_alignment = 32;
// Smallest possible encodings, used to bound counts before reserving memory:
// a key/value pair is at least key length (8) + type (4) + a 1-byte value; a
// tensor info at least name length (8) + n_dims (4) + one dim (8) + type (4) +
// offset (8).
inline constexpr std::uint64_t gguf_min_kv_bytes = 13;
inline constexpr std::uint64_t gguf_min_tensor_info_bytes = 32;
// Keys and tensor names: the GGUF spec caps keys at 65535 bytes (tensor names
// at 64; the looser bound is applied to both so that odd writers still load).
inline constexpr std::uint64_t gguf_max_name_bytes = 65535;
// Metadata arrays are decoded into GGUFValues (48 bytes each, however small on
// disk), so the total number of array elements is capped: a 1 GB file of
// uint8 arrays must not become 48 GB of values. Real files hold ~1M (a 256k
// vocabulary's tokens, scores, types and merges).
inline constexpr std::uint64_t gguf_max_array_values = std::uint64_t{1} << 23;

// Everything parsed from one GGUF file.
struct GGUFParsed {
    std::uint32_t version = 0;
    std::uint64_t alignment = gguf_default_alignment;
    std::vector<std::pair<std::string, GGUFValue>> metadata;  // file order
    std::map<std::string, std::size_t, std::less<>> key_index;
    std::vector<TensorEntry> tensors;                        // file order
    std::map<std::string, std::size_t, std::less<>> tensor_index;
};

inline GGUFType read_gguf_type(ByteCursor& in, std::string_view what) {
    const auto tag = in.read<std::uint32_t>(what);
    if (tag >= gguf_type_count)
        throw Error(std::string(what) + " " + std::to_string(tag) + " is not a GGUF value type (0-12)");
    return static_cast<GGUFType>(tag);
}

// One value of the given type; `depth` counts enclosing arrays, `values_left`
// is what remains of gguf_max_array_values.
inline GGUFValue read_gguf_value(ByteCursor& in, GGUFType type, int depth, std::uint64_t& values_left) {
    GGUFValue v;
    v.type = type;
    switch (type) {
        case GGUFType::uint8: v.value = std::uint64_t{in.read<std::uint8_t>("uint8 value")}; break;
        case GGUFType::int8: v.value = std::int64_t{in.read<std::int8_t>("int8 value")}; break;
        case GGUFType::uint16: v.value = std::uint64_t{in.read<std::uint16_t>("uint16 value")}; break;
        case GGUFType::int16: v.value = std::int64_t{in.read<std::int16_t>("int16 value")}; break;
        case GGUFType::uint32: v.value = std::uint64_t{in.read<std::uint32_t>("uint32 value")}; break;
        case GGUFType::int32: v.value = std::int64_t{in.read<std::int32_t>("int32 value")}; break;
        case GGUFType::uint64: v.value = in.read<std::uint64_t>("uint64 value"); break;
        case GGUFType::int64: v.value = in.read<std::int64_t>("int64 value"); break;
        case GGUFType::float32: v.value = double{in.read<float>("float32 value")}; break;
        case GGUFType::float64: v.value = in.read<double>("float64 value"); break;
        case GGUFType::boolean: {
            const auto byte = in.read<std::uint8_t>("bool value");
            if (byte > 1) throw Error("bool value " + std::to_string(byte) + " is neither 0 nor 1");
            v.value = byte == 1;
            break;
        }
        case GGUFType::string: v.value = std::string(in.read_string("string")); break;
        case GGUFType::array: {
            if (depth >= gguf_max_array_depth)
                throw Error("arrays nested more than " + std::to_string(gguf_max_array_depth) + " deep");
            v.element_type = read_gguf_type(in, "array element type");
            const auto count = in.read<std::uint64_t>("array length");
            // Every element takes at least min_bytes on disk, so a count the
            // remaining bytes cannot hold is rejected before reserve().
            const std::uint64_t fixed = gguf_type_fixed_size(v.element_type);
            const std::uint64_t min_bytes = fixed != 0 ? fixed : v.element_type == GGUFType::string ? 8 : 12;
            if (count > in.remaining() / min_bytes)
                throw Error("array of " + std::to_string(count) + " " +
                            std::string(gguf_type_name(v.element_type)) + " elements cannot fit in the " +
                            std::to_string(in.remaining()) + " bytes left in the file");
            if (count > values_left)
                throw Error("metadata arrays hold more than " + std::to_string(gguf_max_array_values) +
                            " values in all (moelab's limit, which bounds memory)");
            values_left -= count;
            GGUFValue::Array items;
            items.reserve(static_cast<std::size_t>(count));
            for (std::uint64_t i = 0; i < count; ++i) {
                try {
                    items.push_back(read_gguf_value(in, v.element_type, depth + 1, values_left));
                } catch (const Error& e) {
                    throw Error("array element " + std::to_string(i), e.what());
                }
            }
            v.value = std::move(items);
            break;
        }
    }
    return v;
}

// A key or tensor name: non-empty, valid UTF-8 (names end up in messages and maps).
inline std::string read_gguf_name(ByteCursor& in, std::string_view what) {
    const std::string_view name = in.read_string(what);
    if (name.empty()) throw Error(std::string(what) + " is empty");
    if (name.size() > gguf_max_name_bytes)
        throw Error(std::string(what) + " is " + std::to_string(name.size()) + " bytes long, over the limit of " +
                    std::to_string(gguf_max_name_bytes));
    if (!is_valid_utf8(name)) throw Error(std::string(what) + " " + printable_name(name) + " is not valid UTF-8");
    return std::string(name);
}

inline std::string shape_string(const std::vector<std::uint64_t>& dims) {
    std::string s = "[";
    for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + "]";
}

// Steps 1-5: magic, version, counts, metadata.
inline std::uint64_t read_gguf_header(ByteCursor& in, GGUFParsed& out) {
    const std::string_view magic = in.read_bytes(4, "magic");
    if (magic != "GGUF")
        throw Error("not a GGUF file: it starts with " + printable_name(magic) + ", not \"GGUF\"");
    out.version = in.read<std::uint32_t>("version");
    if (out.version == 1)
        throw Error("GGUF version 1 is not supported (it used 32-bit counts); moelab reads versions 2 and 3");
    if (out.version != 2 && out.version != 3) {
        const std::uint32_t swapped = (out.version >> 24) | ((out.version >> 8) & 0xFF00u) |
                                      ((out.version << 8) & 0xFF0000u) | (out.version << 24);
        if (swapped == 2 || swapped == 3) throw Error("big-endian GGUF files are not supported");
        throw Error("unsupported GGUF version " + std::to_string(out.version) + " (moelab reads versions 2 and 3)");
    }
    const auto n_tensors = in.read<std::uint64_t>("tensor count");
    const auto n_kv = in.read<std::uint64_t>("metadata count");
    if (n_kv > in.remaining() / gguf_min_kv_bytes)
        throw Error("metadata count " + std::to_string(n_kv) + " cannot fit in the " +
                    std::to_string(in.remaining()) + " bytes left in the file");

    out.metadata.reserve(static_cast<std::size_t>(n_kv));
    std::uint64_t values_left = gguf_max_array_values;
    for (std::uint64_t i = 0; i < n_kv; ++i) {
        std::string key;
        try {
            key = read_gguf_name(in, "key");
        } catch (const Error& e) {
            throw Error("metadata entry " + std::to_string(i) + " of " + std::to_string(n_kv), e.what());
        }
        try {
            if (out.key_index.count(key) != 0) throw Error("duplicate key");
            const GGUFType type = read_gguf_type(in, "value type");
            out.key_index.emplace(key, out.metadata.size());
            out.metadata.emplace_back(key, read_gguf_value(in, type, 0, values_left));
        } catch (const Error& e) {
            throw Error("key '" + key + "'", e.what());
        }
    }

    if (const auto it = out.key_index.find("general.alignment"); it != out.key_index.end()) {
        const GGUFValue& v = out.metadata[it->second].second;
        if (!v.is_integer())
            throw Error("key 'general.alignment': expected an integer, found " + v.type_description());
        const auto* u = std::get_if<std::uint64_t>(&v.value);
        const auto* s = std::get_if<std::int64_t>(&v.value);
        const std::uint64_t a = u ? *u : *s > 0 ? static_cast<std::uint64_t>(*s) : 0;
        if (a == 0 || (a & (a - 1)) != 0)
            throw Error("key 'general.alignment': " + (u ? std::to_string(*u) : std::to_string(*s)) +
                        " is not a non-zero power of two");
        out.alignment = a;
    }
    return n_tensors;
}

// Step 6 for one tensor: everything but where its data lies.
inline TensorEntry read_gguf_tensor_info(ByteCursor& in, std::uint64_t& relative_offset) {
    const auto n_dims = in.read<std::uint32_t>("n_dims");
    if (n_dims == 0 || n_dims > gguf_max_dims)
        throw Error("n_dims " + std::to_string(n_dims) + " is outside 1.." + std::to_string(gguf_max_dims));
    std::vector<std::uint64_t> ne(n_dims);
    for (auto& d : ne) d = in.read<std::uint64_t>("dimension");
    const auto type_id = in.read<std::uint32_t>("type");
    relative_offset = in.read<std::uint64_t>("data offset");

    // ggml counts elements in int64_t: every dim and the product must stay below 2^63.
    constexpr auto max_elements = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    std::uint64_t n_elements = 1;
    for (const std::uint64_t d : ne) {
        const auto product = checked_mul(n_elements, d);
        if (d == 0) throw Error("shape (ne) " + shape_string(ne) + " has a zero dimension");
        if (!product || *product > max_elements)
            throw Error("shape (ne) " + shape_string(ne) + " has more than 2^63 - 1 elements");
        n_elements = *product;
    }
    const GGMLTypeInfo* type = ggml_type_info(type_id);
    if (type == nullptr) throw Error("unknown ggml type id " + std::to_string(type_id));
    if (ne[0] % type->block_elems != 0)
        throw Error("row length ne[0] = " + std::to_string(ne[0]) + " is not a multiple of " +
                    std::string(type->name) + "'s block of " + std::to_string(type->block_elems));
    // n_elements / block_elems blocks of block_bytes; cannot overflow past the
    // check, but checked anyway because the inputs came from the file.
    const auto nbytes = checked_mul(n_elements / type->block_elems, type->block_bytes);
    if (!nbytes) throw Error("data size overflows 64 bits");

    TensorEntry t;
    t.type_name = std::string(type->name);
    t.dtype = type->dtype;
    t.shape.assign(ne.rbegin(), ne.rend());  // outermost first
    t.nbytes = *nbytes;
    return t;
}

// Steps 6-7: tensor infos, then place every tensor inside the data section.
inline void read_gguf_tensors(ByteCursor& in, std::uint64_t n_tensors, const MappedFile& file, GGUFParsed& out) {
    if (n_tensors > in.remaining() / gguf_min_tensor_info_bytes)
        throw Error("tensor count " + std::to_string(n_tensors) + " cannot fit in the " +
                    std::to_string(in.remaining()) + " bytes left in the file");
    out.tensors.reserve(static_cast<std::size_t>(n_tensors));
    std::vector<std::uint64_t> offsets;
    offsets.reserve(static_cast<std::size_t>(n_tensors));
    for (std::uint64_t i = 0; i < n_tensors; ++i) {
        std::string name;
        try {
            name = read_gguf_name(in, "tensor name");
        } catch (const Error& e) {
            throw Error("tensor info " + std::to_string(i) + " of " + std::to_string(n_tensors), e.what());
        }
        try {
            if (out.tensor_index.count(name) != 0) throw Error("duplicate tensor name");
            std::uint64_t relative_offset = 0;
            TensorEntry t = read_gguf_tensor_info(in, relative_offset);
            t.name = name;
            out.tensor_index.emplace(name, out.tensors.size());
            out.tensors.push_back(std::move(t));
            offsets.push_back(relative_offset);
        } catch (const Error& e) {
            throw Error("tensor '" + name + "'", e.what());
        }
    }
    if (n_tensors == 0) return;  // no data section to place

    const std::uint64_t file_size = file.size();
    const auto data_start = checked_align_up(in.position(), out.alignment);
    if (!data_start || *data_start > file_size)
        throw Error("the data section would start past the end of the file (header ends at byte " +
                    std::to_string(in.position()) + ", alignment " + std::to_string(out.alignment) + ", file " +
                    std::to_string(file_size) + " bytes)");
    for (std::size_t i = 0; i < out.tensors.size(); ++i) {
        TensorEntry& t = out.tensors[i];
        const std::string where = "tensor '" + t.name + "'";
        if (offsets[i] % out.alignment != 0)
            throw Error(where, "data offset " + std::to_string(offsets[i]) + " is not a multiple of the alignment (" +
                                   std::to_string(out.alignment) + ")");
        const auto begin = checked_add(*data_start, offsets[i]);
        const auto end = begin ? checked_add(*begin, t.nbytes) : std::nullopt;
        if (!end)
            throw Error(where, "data offset " + std::to_string(offsets[i]) + " + size " + std::to_string(t.nbytes) +
                                   " overflows 64 bits");
        if (*end > file_size)
            throw Error(where, "data [" + std::to_string(*begin) + ", " + std::to_string(*end) +
                                   ") ends past the end of the file (" + std::to_string(file_size) + " bytes)");
        t.file_offset = *begin;
        t.data = file.data() + *begin;
    }
    // No two tensors may share bytes: sort by start, compare neighbours.
    std::vector<std::size_t> order(out.tensors.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return out.tensors[a].file_offset < out.tensors[b].file_offset; });
    for (std::size_t k = 1; k < order.size(); ++k) {
        const TensorEntry& prev = out.tensors[order[k - 1]];
        const TensorEntry& next = out.tensors[order[k]];
        if (prev.file_offset + prev.nbytes > next.file_offset)
            throw Error("tensors '" + prev.name + "' and '" + next.name + "' overlap: [" +
                        std::to_string(prev.file_offset) + ", " + std::to_string(prev.file_offset + prev.nbytes) +
                        ") and [" + std::to_string(next.file_offset) + ", " +
                        std::to_string(next.file_offset + next.nbytes) + ")");
    }
}

// Parses one mapped GGUF file; errors are prefixed with its path.
inline GGUFParsed parse_gguf(const MappedFile& file) {
    try {
        GGUFParsed out;
        ByteCursor in(file.data(), file.size());
        const std::uint64_t n_tensors = read_gguf_header(in, out);
        read_gguf_tensors(in, n_tensors, file, out);
        return out;
    } catch (const Error& e) {
        throw Error(file.path().string(), e.what());
    }
}

// "NAME-00002-of-00003.gguf" -> {NAME, 2, 3, 5 digits}; nullopt for other names.
struct GGUFSplitName {
    std::string prefix;
    std::uint64_t number = 0, count = 0;
    std::size_t number_width = 0, count_width = 0;
};
inline std::optional<GGUFSplitName> parse_gguf_split_name(std::string_view filename) {
    constexpr std::string_view ext = ".gguf", of = "-of-";
    if (filename.size() <= ext.size() || filename.substr(filename.size() - ext.size()) != ext) return std::nullopt;
    const std::string_view stem = filename.substr(0, filename.size() - ext.size());
    const std::size_t of_pos = stem.rfind(of);
    if (of_pos == std::string_view::npos) return std::nullopt;
    const std::size_t dash = stem.substr(0, of_pos).rfind('-');
    if (dash == std::string_view::npos) return std::nullopt;
    const auto digits = [](std::string_view s) -> std::optional<std::uint64_t> {
        if (s.empty() || s.size() > 9) return std::nullopt;
        std::uint64_t n = 0;
        for (const char c : s) {
            if (c < '0' || c > '9') return std::nullopt;
            n = n * 10 + static_cast<std::uint64_t>(c - '0');
        }
        return n;
    };
    const std::string_view number = stem.substr(dash + 1, of_pos - dash - 1);
    const std::string_view count = stem.substr(of_pos + of.size());
    const auto n = digits(number), c = digits(count);
    if (!n || !c) return std::nullopt;
    return GGUFSplitName{std::string(stem.substr(0, dash)), *n, *c, number.size(), count.size()};
}

inline std::string zero_padded(std::uint64_t value, std::size_t width) {
    std::string s = std::to_string(value);
    return s.size() >= width ? s : std::string(width - s.size(), '0') + s;
}

}  // namespace detail

// A GGUF model: one file or a split set, memory-mapped; owns the mappings.
class GGUFFile {
public:
    explicit GGUFFile(const std::filesystem::path& path) {
        GGUFFile given(single_file, path);
        const std::int64_t n_splits = given.get_int_or("split.count", 1);
        if (n_splits <= 1) {
            *this = std::move(given);
        } else {
            *this = merge_splits(std::move(given), n_splits);
        }
        path_ = path;
    }

    // The path as given to the constructor (for a split set: the split given).
    const std::filesystem::path& path() const { return path_; }
    std::uint32_t version() const { return version_; }
    std::uint64_t alignment() const { return alignment_; }
    std::size_t split_count() const { return files_.size(); }
    // MappedFile::release for bytes of whichever split maps them; others are ignored.
    void release(const std::byte* p, std::size_t n) const noexcept {
        for (const MappedFile& f : files_) f.release(p, n);
    }

    // Tensors in file order (split by split for a split set).
    const std::vector<TensorEntry>& tensors() const { return tensors_; }
    const TensorEntry* find_tensor(std::string_view name) const {
        const auto it = tensor_index_.find(name);
        return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
    }
    // The file a tensor's bytes live in (for error messages). Throws if absent.
    const std::filesystem::path& file_of(std::string_view tensor_name) const {
        const auto it = tensor_index_.find(tensor_name);
        if (it == tensor_index_.end()) throw Error(path_.string(), "tensor '" + std::string(tensor_name) + "': missing");
        return files_[tensor_file_[it->second]].path();
    }

    // Metadata in file order (for a split set: the first split's).
    const std::vector<std::pair<std::string, GGUFValue>>& metadata() const { return metadata_; }
    const GGUFValue* find(std::string_view key) const {
        const auto it = key_index_.find(key);
        return it == key_index_.end() ? nullptr : &metadata_[it->second].second;
    }

    // Typed getters. Each throws moelab::Error "FILE: key 'K': missing" or
    // "FILE: key 'K': expected <type>, found <type>".
    std::string get_string(std::string_view key) const {
        const GGUFValue& v = require(key);
        if (const auto* s = v.as_string()) return *s;
        type_error(key, "string", v);
    }
    // Any integer type, range-checked into int64.
    std::int64_t get_int(std::string_view key) const { return to_int(key, require(key)); }
    // float32 / float64, and integers converted.
    double get_float(std::string_view key) const {
        const GGUFValue& v = require(key);
        if (const auto d = v.to_double()) return *d;
        type_error(key, "a number", v);
    }
    bool get_bool(std::string_view key) const {
        const GGUFValue& v = require(key);
        if (const auto* b = v.as_bool()) return *b;
        type_error(key, "bool", v);
    }
    std::vector<std::string> get_string_array(std::string_view key) const {
        const GGUFValue& v = require(key);
        if (v.type != GGUFType::array || v.element_type != GGUFType::string) type_error(key, "array of string", v);
        std::vector<std::string> out;
        out.reserve(v.as_array()->size());
        for (const GGUFValue& item : *v.as_array()) out.push_back(*item.as_string());
        return out;
    }
    std::vector<std::int64_t> get_int_array(std::string_view key) const {
        const GGUFValue& v = require(key);
        if (v.type != GGUFType::array || !gguf_type_is_integer(v.element_type))
            type_error(key, "array of integers", v);
        std::vector<std::int64_t> out;
        out.reserve(v.as_array()->size());
        for (const GGUFValue& item : *v.as_array()) out.push_back(to_int(key, item));
        return out;
    }
    std::vector<double> get_float_array(std::string_view key) const {
        const GGUFValue& v = require(key);
        const bool numeric = gguf_type_is_integer(v.element_type) || gguf_type_is_float(v.element_type);
        if (v.type != GGUFType::array || !numeric) type_error(key, "array of numbers", v);
        std::vector<double> out;
        out.reserve(v.as_array()->size());
        for (const GGUFValue& item : *v.as_array()) out.push_back(*item.to_double());
        return out;
    }

    // The same for optional keys: `fallback` when the key is absent; a present
    // key of the wrong type is still an error.
    std::string get_string_or(std::string_view key, std::string fallback) const {
        return find(key) ? get_string(key) : fallback;
    }
    std::int64_t get_int_or(std::string_view key, std::int64_t fallback) const {
        return find(key) ? get_int(key) : fallback;
    }
    double get_float_or(std::string_view key, double fallback) const { return find(key) ? get_float(key) : fallback; }
    bool get_bool_or(std::string_view key, bool fallback) const { return find(key) ? get_bool(key) : fallback; }
    std::vector<std::string> get_string_array_or(std::string_view key, std::vector<std::string> fallback) const {
        return find(key) ? get_string_array(key) : fallback;
    }
    std::vector<std::int64_t> get_int_array_or(std::string_view key, std::vector<std::int64_t> fallback) const {
        return find(key) ? get_int_array(key) : fallback;
    }
    std::vector<double> get_float_array_or(std::string_view key, std::vector<double> fallback) const {
        return find(key) ? get_float_array(key) : fallback;
    }

private:
    struct SingleFile {};
    static constexpr SingleFile single_file{};

    // Opens exactly one file, whatever its split keys say.
    GGUFFile(SingleFile, const std::filesystem::path& path) : path_(path) {
        files_.emplace_back(path);
        detail::GGUFParsed parsed = detail::parse_gguf(files_.front());
        version_ = parsed.version;
        alignment_ = parsed.alignment;
        metadata_ = std::move(parsed.metadata);
        key_index_ = std::move(parsed.key_index);
        tensors_ = std::move(parsed.tensors);
        tensor_index_ = std::move(parsed.tensor_index);
        tensor_file_.assign(tensors_.size(), 0);
    }

    // `given` is split given.get_int("split.no") of n_splits; opens the others
    // by file name and merges them, split 0 first.
    static GGUFFile merge_splits(GGUFFile given, std::int64_t n_splits) {
        const std::string where = given.path_.string();
        const std::int64_t given_no = given.get_int("split.no");
        const auto name = detail::parse_gguf_split_name(given.path_.filename().string());
        if (!name)
            throw Error(where, "key 'split.count' is " + std::to_string(n_splits) +
                                   ", but the file name does not follow NAME-00001-of-0000N.gguf");
        if (static_cast<std::int64_t>(name->count) != n_splits || given_no < 0 ||
            static_cast<std::int64_t>(name->number) != given_no + 1)
            throw Error(where, "keys split.no = " + std::to_string(given_no) + ", split.count = " +
                                   std::to_string(n_splits) + " disagree with the file name (split " +
                                   std::to_string(name->number) + " of " + std::to_string(name->count) + ")");
        const std::filesystem::path folder = given.path_.parent_path();
        std::vector<GGUFFile> parts;
        parts.reserve(static_cast<std::size_t>(n_splits));
        for (std::int64_t i = 0; i < n_splits; ++i) {
            if (i == given_no) {
                parts.push_back(std::move(given));
                continue;
            }
            const std::string filename = name->prefix + "-" + detail::zero_padded(i + 1, name->number_width) + "-of-" +
                                         detail::zero_padded(name->count, name->count_width) + ".gguf";
            parts.push_back(GGUFFile(single_file, folder / filename));
        }
        for (std::int64_t i = 0; i < n_splits; ++i) {
            const GGUFFile& part = parts[static_cast<std::size_t>(i)];
            if (part.get_int_or("split.count", 1) != n_splits || part.get_int_or("split.no", -1) != i)
                throw Error(part.path_.string(), "expected split.no = " + std::to_string(i) + " and split.count = " +
                                                     std::to_string(n_splits) + " (from the file name)");
        }

        GGUFFile merged = std::move(parts.front());
        for (std::size_t i = 1; i < parts.size(); ++i) {
            GGUFFile& part = parts[i];
            const auto file_index = static_cast<std::uint32_t>(merged.files_.size());
            merged.files_.push_back(std::move(part.files_.front()));  // the mapping moves, pointers stay valid
            for (TensorEntry& t : part.tensors_) {
                if (merged.tensor_index_.count(t.name) != 0)
                    throw Error(merged.files_.back().path().string(),
                                "tensor '" + t.name + "' is also in " + merged.file_of(t.name).string());
                merged.tensor_index_.emplace(t.name, merged.tensors_.size());
                merged.tensors_.push_back(std::move(t));
                merged.tensor_file_.push_back(file_index);
            }
        }
        const std::int64_t expected = merged.get_int_or("split.tensors.count", static_cast<std::int64_t>(merged.tensors_.size()));
        if (expected != static_cast<std::int64_t>(merged.tensors_.size()))
            throw Error(merged.files_.front().path().string(),
                        "key 'split.tensors.count' is " + std::to_string(expected) + ", but the " +
                            std::to_string(n_splits) + " splits hold " + std::to_string(merged.tensors_.size()) +
                            " tensors");
        return merged;
    }

    const GGUFValue& require(std::string_view key) const {
        const GGUFValue* v = find(key);
        if (v == nullptr) throw Error(metadata_path(), "key '" + std::string(key) + "': missing");
        return *v;
    }
    [[noreturn]] void type_error(std::string_view key, std::string_view expected, const GGUFValue& found) const {
        throw Error(metadata_path(), "key '" + std::string(key) + "': expected " + std::string(expected) +
                                         ", found " + found.type_description());
    }
    std::int64_t to_int(std::string_view key, const GGUFValue& v) const {
        if (!v.is_integer()) type_error(key, "an integer", v);
        if (const auto i = v.to_int()) return *i;
        throw Error(metadata_path(), "key '" + std::string(key) + "': value " +
                                         std::to_string(std::get<std::uint64_t>(v.value)) + " does not fit in int64");
    }
    // Metadata comes from the first file (split 0).
    std::string metadata_path() const { return files_.front().path().string(); }

    std::filesystem::path path_;
    std::vector<MappedFile> files_;           // one per split; owns the bytes tensors_ point into
    std::uint32_t version_ = 0;
    std::uint64_t alignment_ = detail::gguf_default_alignment;
    std::vector<std::pair<std::string, GGUFValue>> metadata_;
    std::map<std::string, std::size_t, std::less<>> key_index_;
    std::vector<TensorEntry> tensors_;
    std::map<std::string, std::size_t, std::less<>> tensor_index_;
    std::vector<std::uint32_t> tensor_file_;  // index into files_ for each tensor
};

}  // namespace moelab::io
