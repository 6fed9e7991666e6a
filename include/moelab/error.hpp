// SPDX-License-Identifier: MIT
// moelab/error.hpp — the one exception type the library throws.
//
// Depends on: the standard library only.
//
// Every failure that comes from outside the program (a hostile file, a bad
// argument) is reported as moelab::Error whose message names *where* (a file,
// a tensor, a key) and *what* is wrong, e.g.
//     "model.gguf: tensor 'blk.0.attn_q.weight': data [96, 4192) ends past the end of the file (4000 bytes)"
// Callers that add context wrap the message: Error(context, inner.what()).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace moelab {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
    // "context: message" — the usual way to say which file or tensor failed.
    Error(std::string_view context, std::string_view message)
        : std::runtime_error(std::string(context) + ": " + std::string(message)) {}
};

}  // namespace moelab
