#include "core/metrics/registry.h"

#include <cmath>
#include <sstream>

namespace tern {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_micros_.fetch_add(static_cast<uint64_t>(std::llround(value * 1e6)), std::memory_order_relaxed);
}

void Histogram::Snapshot(std::vector<uint64_t>* cumulative, uint64_t* count, double* sum) const {
  cumulative->clear();
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    cumulative->push_back(running);
  }
  *count = running;
  *sum = static_cast<double>(sum_micros_.load(std::memory_order_relaxed)) / 1e6;
}

template <>
Counter& Family<Counter>::With(const std::vector<std::string>& values) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = index_.emplace(values, series_.size());
  if (inserted) series_.emplace_back();
  return series_[it->second];
}

template <>
Histogram& Family<Histogram>::With(const std::vector<std::string>& values) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = index_.emplace(values, series_.size());
  if (inserted) series_.emplace_back(bounds_);
  return series_[it->second];
}

Family<Counter>& Registry::AddCounter(std::string name, std::string help, std::vector<std::string> labels) {
  counters_.push_back(std::make_unique<Family<Counter>>(std::move(name), std::move(help), std::move(labels)));
  return *counters_.back();
}

Family<Histogram>& Registry::AddHistogram(std::string name, std::string help, std::vector<std::string> labels,
                                          std::vector<double> bounds) {
  histograms_.push_back(
      std::make_unique<Family<Histogram>>(std::move(name), std::move(help), std::move(labels), std::move(bounds)));
  return *histograms_.back();
}

namespace {

std::string EscapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string LabelText(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    if (!out.empty()) out += ",";
    out += names[i] + "=\"" + EscapeLabel(values[i]) + "\"";
  }
  if (!extra.empty()) out += (out.empty() ? "" : ",") + extra;
  return out.empty() ? "" : "{" + out + "}";
}

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

std::string Registry::Expose() const {
  std::ostringstream out;
  for (const auto& f : counters_) {
    out << "# HELP " << f->name() << " " << f->help() << "\n# TYPE " << f->name() << " counter\n";
    f->ForEach([&](const std::vector<std::string>& values, const Counter& c) {
      out << f->name() << LabelText(f->label_names(), values) << " " << c.value() << "\n";
    });
  }
  for (const auto& f : histograms_) {
    out << "# HELP " << f->name() << " " << f->help() << "\n# TYPE " << f->name() << " histogram\n";
    f->ForEach([&](const std::vector<std::string>& values, const Histogram& h) {
      std::vector<uint64_t> cumulative;
      uint64_t count = 0;
      double sum = 0;
      h.Snapshot(&cumulative, &count, &sum);
      for (size_t i = 0; i < cumulative.size(); ++i) {
        double le = i < h.bounds().size() ? h.bounds()[i] : HUGE_VAL;
        out << f->name() << "_bucket" << LabelText(f->label_names(), values, "le=\"" + Number(le) + "\"") << " "
            << cumulative[i] << "\n";
      }
      out << f->name() << "_sum" << LabelText(f->label_names(), values) << " " << sum << "\n";
      out << f->name() << "_count" << LabelText(f->label_names(), values) << " " << count << "\n";
    });
  }
  return out.str();
}

}  // namespace tern
