// Subcommand registry: each cmd_*.cpp file registers a function that adds its
// subcommand(s) to the root CLI11 app, so commands are added without editing main.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <functional>
#include <string>

namespace tinyemo::cli {

using CommandSetup = std::function<void(CLI::App& root)>;

struct CommandRegistration {
  CommandRegistration(std::string name, CommandSetup setup);
};

// Prints a JSON document on stdout (one line, as scripts expect).
void print_json(const nlohmann::json& j);

// "MAJOR.MINOR.PATCH" (include/tinyemo.h).
std::string version_string();

// Exit code of the last command callback (callbacks set it when they
// finish with a non-fatal failure count, e.g. a feature job with bad images).
int& exit_code();

}  // namespace tinyemo::cli
