// SPDX-License-Identifier: MIT
// moelab/io/safetensors.hpp — read Hugging Face safetensors files, trusting nothing.
//
// Depends on: moelab/io/{mapped_file,untrusted_bytes,untrusted_json,tensor_entry}.hpp,
//             moelab/dtype.hpp, moelab/error.hpp, nlohmann/json, the standard library.
//
// THE BYTE LAYOUT of one .safetensors file:
//
//   1. N          u64 little-endian: the length of the header in bytes
//   2. header     N bytes of UTF-8 JSON, one object:
//                   { "NAME": {"dtype": "BF16", "shape": [515, 64],
//                              "data_offsets": [BEGIN, END]},
//                     ...,
//                     "__metadata__": {"format": "pt", ...} }   (optional, string -> string)
//                 shape is OUTERMOST FIRST (PyTorch order; [] is a scalar);
//                 [BEGIN, END) is relative to the start of the data buffer (3).
//                 The header may end in spaces (padding).
//   3. data buffer  everything after byte 8 + N. The tensors tile it exactly:
//                 sorted by BEGIN, each starts where the previous ended, the
//                 first at 0 and the last ends at the end of the file (the
//                 format forbids holes, so a file cannot hide other data).
//
// What is checked: N against the file size and the format's 100 MB limit; the
// JSON (valid UTF-8, no duplicate keys, nesting bounded, an object at the top);
// each entry's field types; the dtype (known); each dim (a non-negative
// integer, the product below 2^63, no overflow); END - BEGIN equal to the size
// the shape and dtype imply; BEGIN <= END <= buffer size; and the tiling (no
// overlap, no gap). Zero-element tensors ([0, 3], BEGIN == END) are valid.
//
// A model's weights (SafetensorsSet) are either one model.safetensors, or
// shards listed by model.safetensors.index.json:
//     {"metadata": {...}, "weight_map": {"NAME": "model-00001-of-00002.safetensors", ...}}
// Every shard is opened; each name in weight_map must be in the shard it
// names, and no tensor may appear in two shards.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "moelab/dtype.hpp"
#include "moelab/error.hpp"
#include "moelab/io/mapped_file.hpp"
#include "moelab/io/tensor_entry.hpp"
#include "moelab/io/untrusted_bytes.hpp"
#include "moelab/io/untrusted_json.hpp"

namespace moelab::io {

static_assert(std::endian::native == std::endian::little, "moelab's file readers need a little-endian host");

// The dtype strings of the safetensors format, with their size in bits and the
// moelab::DType moelab computes with, if any. Sub-byte types (F4, F6_*) pack
// elements; a tensor's bits must then come to a whole number of bytes.
struct SafetensorsDTypeInfo {
    std::string_view name;
    std::uint32_t bits;
    std::optional<DType> dtype;
};

inline constexpr std::array<SafetensorsDTypeInfo, 22> safetensors_dtype_table{{
    {"F32", 32, DType::f32},  {"F16", 16, DType::f16},  {"BF16", 16, DType::bf16},
    {"F64", 64, std::nullopt}, {"I64", 64, std::nullopt}, {"U64", 64, std::nullopt},
    {"I32", 32, std::nullopt}, {"U32", 32, std::nullopt}, {"I16", 16, std::nullopt},
    {"U16", 16, std::nullopt}, {"I8", 8, std::nullopt},   {"U8", 8, std::nullopt},
    {"BOOL", 8, std::nullopt}, {"C64", 64, std::nullopt},  // complex64: two f32
    {"F8_E4M3", 8, std::nullopt}, {"F8_E5M2", 8, std::nullopt}, {"F8_E8M0", 8, std::nullopt},
    {"F8_E4M3FNUZ", 8, std::nullopt}, {"F8_E5M2FNUZ", 8, std::nullopt},
    {"F6_E2M3", 6, std::nullopt}, {"F6_E3M2", 6, std::nullopt}, {"F4", 4, std::nullopt},
}};

constexpr const SafetensorsDTypeInfo* safetensors_dtype_info(std::string_view name) {
    for (const SafetensorsDTypeInfo& t : safetensors_dtype_table)
        if (t.name == name) return &t;
    return nullptr;
}

namespace detail {

inline constexpr std::uint64_t safetensors_max_header_bytes = 100'000'000;  // the format's own limit

inline std::string offsets_string(std::uint64_t begin, std::uint64_t end) {
    // Appended piece by piece: "[" + std::to_string(...) trips GCC 12's
    // false -Wrestrict warning (GCC bug 105651).
    std::string s = "[";
    s.append(std::to_string(begin)).append(", ").append(std::to_string(end)).append(")");
    return s;
}

// A non-negative JSON integer, or an Error naming `what`.
inline std::uint64_t json_unsigned(const nlohmann::json& j, const std::string& what) {
    if (!j.is_number_unsigned()) throw Error(what + " is " + std::string(j.type_name()) + ", not a non-negative integer");
    return j.get<std::uint64_t>();
}

// One header entry {"dtype", "shape", "data_offsets"} -> TensorEntry, with
// offsets relative to the data buffer (the caller makes them absolute).
inline TensorEntry parse_safetensors_entry(const std::string& name, const nlohmann::json& info,
                                           std::uint64_t buffer_size) {
    if (name.empty()) throw Error("tensor name is empty");
    if (!info.is_object()) throw Error("entry is " + std::string(info.type_name()) + ", not an object");
    const auto field = [&](const char* key) -> const nlohmann::json& {
        const auto it = info.find(key);
        if (it == info.end()) throw Error(std::string("missing field '") + key + "'");
        return *it;
    };
    const nlohmann::json& dtype = field("dtype");
    if (!dtype.is_string()) throw Error("field 'dtype' is " + std::string(dtype.type_name()) + ", not a string");
    const std::string& dtype_name = dtype.get_ref<const std::string&>();
    const SafetensorsDTypeInfo* type = safetensors_dtype_info(dtype_name);
    if (type == nullptr) throw Error("unknown dtype '" + dtype_name + "'");

    const nlohmann::json& shape = field("shape");
    if (!shape.is_array()) throw Error("field 'shape' is " + std::string(shape.type_name()) + ", not an array");
    TensorEntry t;
    t.name = name;
    t.type_name = dtype_name;
    t.dtype = type->dtype;
    t.shape.reserve(shape.size());
    constexpr auto max_elements = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    std::uint64_t n_elements = 1;
    for (const nlohmann::json& dim : shape) {
        t.shape.push_back(json_unsigned(dim, "a dimension in 'shape'"));
        const auto product = checked_mul(n_elements, t.shape.back());
        if (!product || *product > max_elements) throw Error("shape has more than 2^63 - 1 elements");
        n_elements = *product;
    }

    const nlohmann::json& offsets = field("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2)
        throw Error("field 'data_offsets' is not an array of two integers");
    const std::uint64_t begin = json_unsigned(offsets[0], "data_offsets[0]");
    const std::uint64_t end = json_unsigned(offsets[1], "data_offsets[1]");
    if (begin > end) throw Error("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] are reversed");
    if (end > buffer_size)
        throw Error("data_offsets " + offsets_string(begin, end) + " end past the end of the data buffer (" +
                    std::to_string(buffer_size) + " bytes)");
    const auto bits = checked_mul(n_elements, type->bits);
    if (!bits) throw Error("data size overflows 64 bits");
    if (*bits % 8 != 0) throw Error("shape of " + dtype_name + " elements is not a whole number of bytes");
    if (*bits / 8 != end - begin)
        throw Error("shape of " + std::to_string(n_elements) + " " + dtype_name + " elements needs " +
                    std::to_string(*bits / 8) + " bytes, but data_offsets " + offsets_string(begin, end) + " hold " +
                    std::to_string(end - begin));
    t.nbytes = end - begin;
    t.file_offset = begin;  // relative for now
    return t;
}

}  // namespace detail

// One .safetensors file, memory-mapped. Owns the mapping its tensors point into.
class SafetensorsFile {
public:
    explicit SafetensorsFile(const std::filesystem::path& path) : file_(path) {
        try {
            parse();
        } catch (const Error& e) {
            throw Error(file_.path().string(), e.what());
        }
    }

    const std::filesystem::path& path() const { return file_.path(); }
    // Tensors in the order their bytes appear in the file.
    const std::vector<TensorEntry>& tensors() const { return tensors_; }
    const TensorEntry* find_tensor(std::string_view name) const {
        const auto it = index_.find(name);
        return it == index_.end() ? nullptr : &tensors_[it->second];
    }
    // The header's "__metadata__" map (empty when absent).
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

private:
    void parse() {
        const std::uint64_t size = file_.size();
        if (size < 8) throw Error("file is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
        ByteCursor in(file_.data(), size);
        const auto header_length = in.read<std::uint64_t>("header length");
        if (header_length == 0) throw Error("header length is 0");
        if (header_length > size - 8)
            throw Error("header length " + std::to_string(header_length) + " is larger than the file (" +
                        std::to_string(size) + " bytes)");
        if (header_length > detail::safetensors_max_header_bytes)
            throw Error("header length " + std::to_string(header_length) + " exceeds the format's 100 MB limit");
        nlohmann::json header;
        try {
            header = parse_untrusted_json(in.read_bytes(header_length, "header"));
        } catch (const Error& e) {
            throw Error("header", e.what());
        }
        if (!header.is_object()) throw Error("header is " + std::string(header.type_name()) + ", not a JSON object");

        const std::uint64_t buffer_start = 8 + header_length;
        const std::uint64_t buffer_size = size - buffer_start;
        tensors_.reserve(header.size());
        for (const auto& [name, info] : header.items()) {
            if (name == "__metadata__") {
                read_metadata(info);
                continue;
            }
            try {
                tensors_.push_back(detail::parse_safetensors_entry(name, info, buffer_size));
            } catch (const Error& e) {
                throw Error("tensor '" + name + "'", e.what());
            }
        }
        check_tiling(buffer_size);
        for (std::size_t i = 0; i < tensors_.size(); ++i) {
            TensorEntry& t = tensors_[i];
            t.file_offset += buffer_start;  // relative -> absolute; both <= size, no overflow
            t.data = file_.data() + t.file_offset;
            index_.emplace(t.name, i);  // names are unique: the JSON parser rejected duplicate keys
        }
    }

    void read_metadata(const nlohmann::json& info) {
        if (!info.is_object())
            throw Error("__metadata__ is " + std::string(info.type_name()) + ", not an object");
        for (const auto& [key, value] : info.items()) {
            if (!value.is_string())
                throw Error("__metadata__: value of '" + key + "' is " + std::string(value.type_name()) +
                            ", not a string");
            metadata_.emplace(key, value.get<std::string>());
        }
    }

    // Sorted by begin, the tensors must tile [0, buffer_size) with no overlap and no gap.
    void check_tiling(std::uint64_t buffer_size) {
        std::stable_sort(tensors_.begin(), tensors_.end(), [](const TensorEntry& a, const TensorEntry& b) {
            return a.file_offset != b.file_offset ? a.file_offset < b.file_offset : a.nbytes < b.nbytes;
        });
        std::uint64_t covered = 0;  // end of the bytes claimed so far
        const TensorEntry* previous = nullptr;
        for (const TensorEntry& t : tensors_) {
            const std::uint64_t begin = t.file_offset, end = begin + t.nbytes;
            if (begin < covered)
                throw Error("tensors '" + previous->name + "' " +
                            detail::offsets_string(previous->file_offset, previous->file_offset + previous->nbytes) +
                            " and '" + t.name + "' " + detail::offsets_string(begin, end) +
                            " overlap (data_offsets)");
            if (begin > covered)
                throw Error("bytes " + detail::offsets_string(covered, begin) + " of the data buffer belong to no tensor (before '" +
                            t.name + "'); the format forbids holes");
            covered = end;
            previous = &t;
        }
        if (covered != buffer_size)
            throw Error("bytes " + detail::offsets_string(covered, buffer_size) +
                        " at the end of the data buffer belong to no tensor; the format forbids holes");
    }

    MappedFile file_;
    std::vector<TensorEntry> tensors_;
    std::map<std::string, std::size_t, std::less<>> index_;
    std::map<std::string, std::string> metadata_;
};

// A model's weights: one model.safetensors, or the shards named by
// model.safetensors.index.json. Owns every mapping; movable.
class SafetensorsSet {
public:
    // Prefers model.safetensors (as transformers does), else the index.
    static SafetensorsSet open_folder(const std::filesystem::path& hf_folder) {
        std::error_code ec;
        const auto single = hf_folder / "model.safetensors";
        const auto index = hf_folder / "model.safetensors.index.json";
        if (std::filesystem::exists(single, ec)) return open_file(single);
        if (std::filesystem::exists(index, ec)) return open_index(index);
        throw Error(hf_folder.string(), "no model.safetensors or model.safetensors.index.json");
    }

    static SafetensorsSet open_file(const std::filesystem::path& path) {
        SafetensorsSet set;
        set.add(SafetensorsFile(path));
        return set;
    }

    static SafetensorsSet open_index(const std::filesystem::path& index_path) {
        const std::string where = index_path.string();
        const nlohmann::json index = read_json_file(index_path);  // errors name the file
        std::map<std::string, std::vector<std::string>> names_by_shard;  // sorted: shards open in name order
        try {
            names_by_shard = read_weight_map(index);
        } catch (const Error& e) {
            throw Error(where, e.what());
        }
        SafetensorsSet set;
        for (const auto& [shard, names] : names_by_shard) {
            try {
                set.add(SafetensorsFile(index_path.parent_path() / shard));
            } catch (const Error& e) {
                throw Error(where, "shard '" + shard + "': " + e.what());
            }
            for (const std::string& name : names)
                if (set.files_.back().find_tensor(name) == nullptr)
                    throw Error(where, "tensor '" + name + "' is mapped to shard '" + shard +
                                           "', which does not contain it");
        }
        return set;
    }

    // All tensors: shard by shard, each in file order.
    const std::vector<TensorEntry>& tensors() const { return tensors_; }
    const TensorEntry* find_tensor(std::string_view name) const {
        const auto it = index_.find(name);
        return it == index_.end() ? nullptr : &tensors_[it->second];
    }
    // Which file a tensor came from (for error messages). Throws if absent.
    const std::filesystem::path& file_of(std::string_view tensor_name) const {
        const auto it = index_.find(tensor_name);
        if (it == index_.end())
            throw Error(files_.empty() ? std::string("safetensors") : files_.front().path().string(),
                        "tensor '" + std::string(tensor_name) + "': missing");
        return files_[tensor_file_[it->second]].path();
    }
    const std::vector<SafetensorsFile>& files() const { return files_; }

private:
    SafetensorsSet() = default;

    void add(SafetensorsFile file) {
        const std::size_t file_index = files_.size();
        for (const TensorEntry& t : file.tensors()) {
            if (index_.count(t.name) != 0)
                throw Error(file.path().string(), "tensor '" + t.name + "' is also in " + file_of(t.name).string());
            index_.emplace(t.name, tensors_.size());
            tensors_.push_back(t);  // copies the pointer; the mapping moves into files_ below, unmoved in memory
            tensor_file_.push_back(file_index);
        }
        files_.push_back(std::move(file));
    }

    // index.json's weight_map -> {shard file name: [tensor names]}; errors without the file name.
    static std::map<std::string, std::vector<std::string>> read_weight_map(const nlohmann::json& index) {
        if (!index.is_object()) throw Error("index is " + std::string(index.type_name()) + ", not a JSON object");
        const auto it = index.find("weight_map");
        if (it == index.end()) throw Error("missing 'weight_map'");
        if (!it->is_object()) throw Error("'weight_map' is " + std::string(it->type_name()) + ", not an object");
        if (it->empty()) throw Error("'weight_map' is empty");
        std::map<std::string, std::vector<std::string>> names_by_shard;
        for (const auto& [name, shard] : it->items()) {
            if (!shard.is_string())
                throw Error("weight_map: tensor '" + name + "': shard is " + std::string(shard.type_name()) +
                            ", not a string");
            const std::string& shard_name = shard.get_ref<const std::string&>();
            // A plain file name in the same folder: never a path that could escape it.
            if (shard_name.empty() || shard_name == "." || shard_name == ".." ||
                shard_name.find_first_of(std::string_view("/\\\0", 3)) != std::string::npos)
                throw Error("weight_map: tensor '" + name + "': shard '" + shard_name +
                            "' is not a plain file name");
            names_by_shard[shard_name].push_back(name);
        }
        return names_by_shard;
    }

    std::vector<SafetensorsFile> files_;
    std::vector<TensorEntry> tensors_;
    std::map<std::string, std::size_t, std::less<>> index_;
    std::vector<std::size_t> tensor_file_;  // index into files_ for each tensor
};

}  // namespace moelab::io
