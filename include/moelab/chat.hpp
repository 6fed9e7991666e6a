// SPDX-License-Identifier: MIT
// moelab/chat.hpp — turning a conversation into the prompt text a chat model
// was trained on.
//
// Depends on: moelab/error.hpp, the standard library.
//
// Checkpoints ship their format as a Jinja template (tokenizer_config.json's
// "chat_template", or GGUF's tokenizer.chat_template). moelab has no Jinja
// engine; it recognises the two families its models use and formats them
// directly, and refuses any other template with a clear error:
//   ChatML (Qwen2, Qwen2.5, Qwen3, Qwen3.5):  <|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n
//   Llama 3 / 3.1 / 3.2 / 3.3:                <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> ...
// The special markers are plain text here; the tokenizer matches them whole.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "moelab/error.hpp"

namespace moelab {

struct ChatMessage {
    std::string role;  // "system", "user" or "assistant"
    std::string content;
};

enum class ChatFormat { chatml, llama3 };

struct ChatTemplate {
    ChatFormat format = ChatFormat::chatml;
    bool llama31_date_preamble = false;  // Llama 3.1+ templates open the system turn with dates

    // Recognises a template by the markers it emits. `source` names where it
    // came from, for the error message.
    static ChatTemplate detect(std::string_view jinja, std::string_view source) {
        if (jinja.empty()) throw Error(std::string(source), "the model has no chat template (run without --chat)");
        if (jinja.find("<|im_start|>") != std::string_view::npos) return {ChatFormat::chatml, false};
        if (jinja.find("<|start_header_id|>") != std::string_view::npos)
            return {ChatFormat::llama3, jinja.find("Cutting Knowledge Date") != std::string_view::npos};
        throw Error(std::string(source),
                    "chat template not supported: moelab applies ChatML (Qwen) and Llama 3 templates only (run without --chat)");
    }

    // The prompt text for `messages`, ending where the assistant's reply begins.
    std::string apply(const std::vector<ChatMessage>& messages) const {
        std::string out;
        if (format == ChatFormat::chatml) {
            for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
            return out + "<|im_start|>assistant\n";
        }
        out = "<|begin_of_text|>";
        // Llama 3.1 templates emit the dated system turn even without a system message.
        const bool has_system = !messages.empty() && messages.front().role == "system";
        if (llama31_date_preamble && !has_system) out += header("system") + kDatePreamble + "<|eot_id|>";
        for (const auto& m : messages) {
            std::string content = trim(m.content);
            if (m.role == "system" && llama31_date_preamble) content = kDatePreamble + content;
            out += header(m.role) + content + "<|eot_id|>";
        }
        return out + header("assistant");
    }

private:
    // The defaults the Llama 3.1 template uses when no date is passed.
    static constexpr const char* kDatePreamble = "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n";

    static std::string header(const std::string& role) {
        return "<|start_header_id|>" + role + "<|end_header_id|>\n\n";
    }
    static std::string trim(std::string_view s) {
        const auto first = s.find_first_not_of(" \t\n\r");
        if (first == std::string_view::npos) return {};
        const auto last = s.find_last_not_of(" \t\n\r");
        return std::string(s.substr(first, last - first + 1));
    }
};

}  // namespace moelab
