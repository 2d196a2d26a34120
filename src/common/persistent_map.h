// An immutable ordered map with structural sharing: Insert and Erase return a new map in
// O(log n) time and space and leave the original untouched, so a snapshot of a million entries
// is updated by a write without being copied, and any number of readers keep older versions
// alive for as long as they hold them.
//
// It is a treap whose node priorities are a hash of the key, kept in the node so that a walk down
// the tree compares priorities without hashing every key it passes. The shape of the tree is then
// a function of the set of keys alone, so two versions that share most of their entries share most
// of their nodes, and Diff can skip every subtree both versions hold by pointer: comparing two
// versions costs O(d log n) for d differing entries instead of O(n).
//
// Values are copied into nodes and nodes are copied along the path of every update, so V should
// be cheap to copy (a shared_ptr to the real record, for instance).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"

namespace discovery::persistent {

template <typename K, typename V, typename Compare = std::less<>>
class Map {
  struct Node;

  // Owns a node with the count inside it (intrusive) rather than a shared_ptr's separate control
  // block: a map holds one node per entry, and a million services sit in three maps (the view's
  // and two of placement), so every byte of a node counts three million times. One by-value
  // assignment serves copies and moves.
  class NodePtr {  // NOLINT(cppcoreguidelines-special-member-functions)
   public:
    NodePtr() = default;
    NodePtr(std::nullptr_t) {}  // NOLINT(google-explicit-constructor): like a pointer
    explicit NodePtr(const Node* node) : node_(node) {
      if (node_ != nullptr) {
        node_->refs.fetch_add(1, std::memory_order_relaxed);
      }
    }
    NodePtr(const NodePtr& other) : NodePtr(other.node_) {}
    NodePtr(NodePtr&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
    NodePtr& operator=(NodePtr other) noexcept {
      std::swap(node_, other.node_);
      return *this;
    }
    ~NodePtr() {
      // The last owner frees; acq_rel so that every other owner's use happens before.
      if (node_ != nullptr && node_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        delete node_;
      }
    }

    const Node* get() const { return node_; }
    const Node* operator->() const { return node_; }
    const Node& operator*() const { return *node_; }
    friend bool operator==(const NodePtr& a, const NodePtr& b) { return a.node_ == b.node_; }
    friend bool operator==(const NodePtr& a, std::nullptr_t) { return a.node_ == nullptr; }

   private:
    const Node* node_ = nullptr;
  };

  // 56 bytes with string_view keys and shared_ptr values, so that a node fits a 64-byte malloc
  // chunk: a 32-bit priority and no subtree size (the map counts its entries once, at the root).
  struct Node {
    Node(K k, V v, uint32_t p, NodePtr l, NodePtr r)
        : key(std::move(k)),
          value(std::move(v)),
          priority(p),
          left(std::move(l)),
          right(std::move(r)) {}

    K key;
    V value;
    uint32_t priority;
    mutable std::atomic<uint32_t> refs{0};
    NodePtr left;
    NodePtr right;
  };

 public:
  using key_type = K;
  using mapped_type = V;
  // A key's place in the heap order of the treap: a hash of the key.
  using priority_type = uint32_t;

 private:
  static NodePtr New(K key, V value, priority_type priority, NodePtr left, NodePtr right) {
    return NodePtr(
        new Node(std::move(key), std::move(value), priority, std::move(left), std::move(right)));
  }

 public:
  Map() = default;

  size_t size() const { return size_; }
  bool empty() const { return root_ == nullptr; }

  // True when both are the same version (or both empty): equal contents, found in O(1).
  bool SameAs(const Map& other) const { return root_ == other.root_; }

  // The value stored under `key`, or nullptr. The pointer stays valid as long as a map holding
  // this version (or a later one still containing the entry unchanged) exists.
  template <typename Q>
  const V* Find(const Q& key) const {
    const Node* node = root_.get();
    while (node != nullptr) {
      if (compare_(key, node->key)) {
        node = node->left.get();
      } else if (compare_(node->key, key)) {
        node = node->right.get();
      } else {
        return &node->value;
      }
    }
    return nullptr;
  }

  template <typename Q>
  bool Contains(const Q& key) const {
    return Find(key) != nullptr;
  }

  // This map with `key` set to `value` (added or replaced). With `replaced`, it is set to the
  // value the key held before, if any: one walk down the tree instead of a Find and an Insert.
  Map Insert(K key, V value, std::optional<V>* replaced = nullptr) const {
    const priority_type priority = KeyPriority(key);
    bool existed = false;
    NodePtr root = InsertAt(root_, std::move(key), std::move(value), priority, replaced, existed);
    return Map(std::move(root), existed ? size_ : size_ + 1);
  }

  // This map without `key`; the same version when the key is absent. With `erased`, it is set to
  // the value the key held, if any.
  template <typename Q>
  Map Erase(const Q& key, std::optional<V>* erased = nullptr) const {
    const V* held = Find(key);
    if (held == nullptr) {
      return *this;
    }
    if (erased != nullptr) {
      *erased = *held;
    }
    return Map(EraseAt(root_, key), size_ - 1);
  }

  // Whether the tree is a treap of its keys: ordered, every node holding its key's priority and
  // above the ones it outranks, the count right. The shape of a key set is unique, so this is
  // what tests of updates check.
  bool Valid() const {
    const std::optional<size_t> count = ValidAt(root_.get(), nullptr, nullptr);
    return count.has_value() && *count == size_;
  }

  // A change of Apply: set the key to the value, or erase it when the value is empty.
  using Change = std::pair<K, std::optional<V>>;

  // This map with a batch of changes made at once; `changes` is sorted ascending by key without
  // duplicates, and erasing an absent key does nothing. Every node on the paths of the batch is
  // copied once rather than once per change, and untouched subtrees stay shared: m changes cost
  // O(m log(n/m + 1)), which is what lets a server join move a tenth of a million services
  // without churning millions of transient nodes.
  Map Apply(std::vector<Change> changes) const {
    return Apply(std::move(changes), [](const Change&, const V&) {});
  }

  // The same, calling replaced(change, old) for every change of a key the map held, with the
  // value it held: what a caller would otherwise look up first, one walk down the tree each.
  template <typename Replaced>
  Map Apply(std::vector<Change> changes, Replaced&& replaced) const {
    ptrdiff_t added = 0;
    NodePtr root = ApplyAt(root_, std::span<Change>(changes), replaced, added);
    return Map(std::move(root), static_cast<size_t>(static_cast<ptrdiff_t>(size_) + added));
  }

  // The priority of `key` in every map: a hash of it (of the key type itself: a std::string
  // does not hash as the std::string_view of it). FromSorted takes them precomputed.
  static priority_type KeyPriority(const K& key) {
    const uint64_t hash = absl::HashOf(key);
    return static_cast<priority_type>(hash ^ (hash >> 32));
  }

  // Builds a map from entries sorted ascending by key without duplicates, in O(n): the initial
  // load of a large store must not pay O(n log n) allocations.
  static Map FromSorted(std::vector<std::pair<K, V>> entries) {
    // Each key is hashed before Build moves it into its node.
    return Build(entries, [&entries](size_t i) { return KeyPriority(entries[i].first); });
  }

  // The same, with `priorities[i]` = KeyPriority(entries[i].first) computed by the caller. On a
  // load of a million records the keys are cold by the time the map is built, and hashing them
  // there costs a cache miss each; a caller that had the key at hand (decoding it, on several
  // threads) hashes it for almost nothing, and maps of the same keys share one computation.
  static Map FromSorted(std::vector<std::pair<K, V>> entries,
                        std::span<const priority_type> priorities) {
    if (priorities.size() != entries.size()) {
      return FromSorted(std::move(entries));
    }
    return Build(entries, [priorities](size_t i) { return priorities[i]; });
  }

  // In-order traversal without recursion; invalidated by nothing (the version is immutable).
  class ConstIterator {
   public:
    using value_type = std::pair<const K&, const V&>;

    ConstIterator() = default;
    const K& key() const { return stack_.back()->key; }
    const V& value() const { return stack_.back()->value; }
    std::pair<const K&, const V&> operator*() const { return {key(), value()}; }
    ConstIterator& operator++() {
      const Node* node = stack_.back();
      stack_.pop_back();
      PushLeft(node->right.get());
      return *this;
    }
    bool operator==(const ConstIterator& other) const {
      return stack_.empty() ? other.stack_.empty()
                            : (!other.stack_.empty() && stack_.back() == other.stack_.back());
    }

   private:
    friend class Map;
    explicit ConstIterator(const Node* root) { PushLeft(root); }
    void PushLeft(const Node* node) {
      for (; node != nullptr; node = node->left.get()) {
        stack_.push_back(node);
      }
    }
    std::vector<const Node*> stack_;
  };

  ConstIterator begin() const { return ConstIterator(root_.get()); }
  ConstIterator end() const { return ConstIterator(); }

  // Calls f(key, value) for every entry in key order.
  template <typename F>
  void ForEach(F&& f) const {
    for (ConstIterator it = begin(); it != end(); ++it) {
      f(it.key(), it.value());
    }
  }

  // Reports how `after` differs from `before`: removed(key, old) for keys only in `before`,
  // added(key, new) for keys only in `after`, changed(key, old, new) for keys in both whose
  // values differ by operator==. Subtrees both versions share are skipped, so two versions d
  // updates apart cost O(d log n), and nothing is allocated. Calls come in no particular order.
  template <typename Removed, typename Added, typename Changed>
  static void Diff(const Map& before, const Map& after, Removed&& removed, Added&& added,
                   Changed&& changed) {
    DiffAt({before.root_.get(), false}, {after.root_.get(), false}, nullptr, nullptr, removed,
           added, changed);
  }

 private:
  Map(NodePtr root, size_t size) : root_(std::move(root)), size_(size) {}

  // Moves the entries into the nodes of the new map.
  template <typename PriorityAt>
  static Map Build(std::vector<std::pair<K, V>>& entries, const PriorityAt& priority_at) {
    // The right spine of the tree built so far (with the priorities of its nodes), still being
    // changed: nobody else holds these nodes yet.
    std::vector<NodePtr> spine;
    for (size_t i = 0; i < entries.size(); ++i) {
      auto& [key, value] = entries[i];
      const priority_type priority = priority_at(i);  // before the key moves
      NodePtr node = New(std::move(key), std::move(value), priority, nullptr, nullptr);
      NodePtr last_popped;
      // Everything on the spine that the new node outranks goes below it, to its left.
      while (!spine.empty() && Above(node.get(), spine.back().get())) {
        last_popped = std::move(spine.back());
        spine.pop_back();
      }
      Mutable(node).left = std::move(last_popped);
      if (!spine.empty()) {
        Mutable(spine.back()).right = node;
      }
      spine.push_back(std::move(node));
    }
    if (spine.empty()) {
      return Map();
    }
    return Map(spine.front(), entries.size());
  }

  // Whether a node (priority a, key ka) must sit above one with (b, kb): higher priority wins,
  // ties go to the smaller key, so the shape is a function of the key set.
  static bool Before(priority_type a, const K& ka, priority_type b, const K& kb) {
    return a > b || (a == b && Compare()(ka, kb));
  }
  static bool Above(const Node* a, const Node* b) {
    return Before(a->priority, a->key, b->priority, b->key);
  }

  // A node only the caller holds, being built.
  static Node& Mutable(const NodePtr& node) { return const_cast<Node&>(*node); }

  static NodePtr Make(const Node& from, NodePtr left, NodePtr right) {
    return New(from.key, from.value, from.priority, std::move(left), std::move(right));
  }

  // Splits `node` into the keys less than `key` and those greater (`key` itself must be
  // absent).
  template <typename Q>
  static std::pair<NodePtr, NodePtr> Split(const NodePtr& node, const Q& key) {
    if (node == nullptr) {
      return {nullptr, nullptr};
    }
    if (Compare()(node->key, key)) {
      auto [less, greater] = Split(node->right, key);
      return {Make(*node, node->left, std::move(less)), std::move(greater)};
    }
    auto [less, greater] = Split(node->left, key);
    return {std::move(less), Make(*node, std::move(greater), node->right)};
  }

  // Joins two trees where every key of `left` is less than every key of `right`.
  static NodePtr Merge(const NodePtr& left, const NodePtr& right) {
    if (left == nullptr) {
      return right;
    }
    if (right == nullptr) {
      return left;
    }
    if (Above(left.get(), right.get())) {
      return Make(*left, left->left, Merge(left->right, right));
    }
    return Make(*right, Merge(left, right->left), right->right);
  }

  // `existed` is set when the key was there and its value is replaced.
  static NodePtr InsertAt(const NodePtr& node, K key, V value, priority_type priority,
                          std::optional<V>* replaced, bool& existed) {
    if (node == nullptr || Before(priority, key, node->priority, node->key)) {
      if (node != nullptr && !Compare()(key, node->key) && !Compare()(node->key, key)) {
        // Same key (and so same priority): replace the value, keep the children.
        return Replace(*node, std::move(key), std::move(value), replaced, existed);
      }
      // The new key goes here; whatever was below splits around it. An equal key further down
      // cannot exist: it would have the same priority and so sit at or above this point.
      auto [less, greater] = Split(node, key);
      return New(std::move(key), std::move(value), priority, std::move(less), std::move(greater));
    }
    if (Compare()(key, node->key)) {
      return Make(
          *node,
          InsertAt(node->left, std::move(key), std::move(value), priority, replaced, existed),
          node->right);
    }
    if (Compare()(node->key, key)) {
      return Make(
          *node, node->left,
          InsertAt(node->right, std::move(key), std::move(value), priority, replaced, existed));
    }
    return Replace(*node, std::move(key), std::move(value), replaced, existed);
  }

  static NodePtr Replace(const Node& node, K key, V value, std::optional<V>* replaced,
                         bool& existed) {
    existed = true;
    if (replaced != nullptr) {
      *replaced = node.value;
    }
    return New(std::move(key), std::move(value), node.priority, node.left, node.right);
  }

  template <typename Q>
  static NodePtr EraseAt(const NodePtr& node, const Q& key) {
    if (Compare()(key, node->key)) {
      return Make(*node, EraseAt(node->left, key), node->right);
    }
    if (Compare()(node->key, key)) {
      return Make(*node, node->left, EraseAt(node->right, key));
    }
    return Merge(node->left, node->right);
  }

  // The number of entries below `node` when it is a valid treap with keys between the bounds.
  static std::optional<size_t> ValidAt(const Node* node, const K* low, const K* high) {
    if (node == nullptr) {
      return 0;
    }
    if ((low != nullptr && !Compare()(*low, node->key)) ||
        (high != nullptr && !Compare()(node->key, *high)) ||
        node->priority != KeyPriority(node->key)) {
      return std::nullopt;
    }
    for (const Node* child : {node->left.get(), node->right.get()}) {
      if (child != nullptr && Above(child, node)) {
        return std::nullopt;
      }
    }
    const std::optional<size_t> left = ValidAt(node->left.get(), low, &node->key);
    const std::optional<size_t> right = ValidAt(node->right.get(), &node->key, high);
    if (!left.has_value() || !right.has_value()) {
      return std::nullopt;
    }
    return 1 + *left + *right;
  }

  // `node` with the sorted `changes` made below it; `added` counts the entries gained (less the
  // ones lost).
  template <typename Replaced>
  static NodePtr ApplyAt(const NodePtr& node, std::span<Change> changes, Replaced& replaced,
                         ptrdiff_t& added) {
    if (changes.empty()) {
      return node;
    }
    if (node == nullptr && changes.size() == 1) {
      // A new leaf, the common case of a batch spread over a large map.
      if (!changes.front().second.has_value()) {
        return nullptr;
      }
      ++added;
      Change& put = changes.front();
      const priority_type priority = KeyPriority(put.first);
      return New(std::move(put.first), *std::move(put.second), priority, nullptr, nullptr);
    }
    if (node == nullptr) {
      std::vector<std::pair<K, V>> puts;
      for (Change& change : changes) {
        if (change.second.has_value()) {
          puts.emplace_back(std::move(change.first), *std::move(change.second));
        }
      }
      added += static_cast<ptrdiff_t>(puts.size());
      return FromSorted(std::move(puts)).root_;
    }
    const auto at = std::partition_point(changes.begin(), changes.end(), [&](const Change& c) {
      return Compare()(c.first, node->key);
    });
    const bool hit = at != changes.end() && !Compare()(node->key, at->first);
    if (hit) {
      replaced(std::as_const(*at), node->value);
    }
    const auto after = hit ? at + 1 : at;
    NodePtr left = ApplyAt(node->left, std::span<Change>(changes.begin(), at), replaced, added);
    NodePtr right = ApplyAt(node->right, std::span<Change>(after, changes.end()), replaced, added);
    if (hit && !at->second.has_value()) {
      --added;
      return Merge(left, right);
    }
    if (hit) {
      return Join(std::move(left), std::move(at->first), *std::move(at->second), std::move(right));
    }
    if (left == node->left && right == node->right) {
      return node;
    }
    if (StaysBelow(left, *node) && StaysBelow(right, *node)) {
      return Make(*node, std::move(left), std::move(right));
    }
    return Join(std::move(left), node->key, node->value, std::move(right));
  }

  // Whether `child` belongs below `parent`: a comparison of their priorities (their keys only
  // break a tie).
  static bool StaysBelow(const NodePtr& child, const Node& parent) {
    return child == nullptr || !Above(child.get(), &parent);
  }

  // The tree of `left`, then (key, value), then `right` (every key of `left` is less than `key`,
  // every key of `right` greater). A root of `left` or `right` that outranks the key stays above
  // it, so the result is the one shape its key set has.
  static NodePtr Join(NodePtr left, K key, V value, NodePtr right) {
    const priority_type priority = KeyPriority(key);
    const bool left_above = left != nullptr && Before(left->priority, left->key, priority, key);
    const bool right_above = right != nullptr && Before(right->priority, right->key, priority, key);
    if (!left_above && !right_above) {
      return New(std::move(key), std::move(value), priority, std::move(left), std::move(right));
    }
    if (left_above && (!right_above || Above(left.get(), right.get()))) {
      return Make(*left, left->left,
                  Join(left->right, std::move(key), std::move(value), std::move(right)));
    }
    return Make(*right, Join(std::move(left), std::move(key), std::move(value), right->left),
                right->right);
  }

  // The highest node of `node`'s subtree whose key lies strictly between the bounds (nullptr:
  // unbounded): the root of the part of the subtree between them, found without copying a node.
  static const Node* Clip(const Node* node, const K* low, const K* high) {
    while (node != nullptr) {
      if (low != nullptr && !Compare()(*low, node->key)) {
        node = node->right.get();
      } else if (high != nullptr && !Compare()(node->key, *high)) {
        node = node->left.get();
      } else {
        break;
      }
    }
    return node;
  }

  // Reports every entry of `node`'s subtree in key order; only those between the bounds when
  // `clip` (without it the whole subtree lies between them).
  template <typename Removed, typename Added>
  static void ReportAll(const Node* node, const K* low, const K* high, bool clip, bool as_added,
                        Removed& removed, Added& added) {
    if (clip) {
      node = Clip(node, low, high);
    }
    if (node == nullptr) {
      return;
    }
    ReportAll(node->left.get(), low, &node->key, clip, as_added, removed, added);
    if (as_added) {
      added(node->key, node->value);
    } else {
      removed(node->key, node->value);
    }
    ReportAll(node->right.get(), &node->key, high, clip, as_added, removed, added);
  }

  // A side of DiffAt: a subtree, and whether it may hold keys outside the bounds, to be clipped
  // to them. A subtree whose keys all lie between the bounds never needs it, and neither do its
  // children between theirs; a subtree taken whole to narrower bounds does, and so do its
  // children.
  struct Side {
    const Node* node;
    bool clip;
  };

  // Compares the parts of two subtrees between the bounds. Both sides are always taken to the
  // same bounds, so one node at the top of both parts means equal parts.
  template <typename Removed, typename Added, typename Changed>
  static void DiffAt(Side a_side, Side b_side, const K* low, const K* high, Removed& removed,
                     Added& added, Changed& changed) {
    const Node* a = a_side.clip ? Clip(a_side.node, low, high) : a_side.node;
    const Node* b = b_side.clip ? Clip(b_side.node, low, high) : b_side.node;
    if (a == b) {
      return;
    }
    if (a == nullptr) {
      ReportAll(b, low, high, b_side.clip, /*as_added=*/true, removed, added);
      return;
    }
    if (b == nullptr) {
      ReportAll(a, low, high, a_side.clip, /*as_added=*/false, removed, added);
      return;
    }
    const Side a_left{a->left.get(), a_side.clip};
    const Side a_right{a->right.get(), a_side.clip};
    const Side b_left{b->left.get(), b_side.clip};
    const Side b_right{b->right.get(), b_side.clip};
    if (a->priority == b->priority && !Compare()(a->key, b->key) && !Compare()(b->key, a->key)) {
      if (!(a->value == b->value)) {
        changed(a->key, a->value, b->value);
      }
      DiffAt(a_left, b_left, low, &a->key, removed, added, changed);
      DiffAt(a_right, b_right, &a->key, high, removed, added, changed);
      return;
    }
    // Each part's top node holds its key of highest priority; the higher of the two cannot be
    // in the other part. The other part is compared on either side of it.
    if (Above(a, b)) {
      removed(a->key, a->value);
      DiffAt(a_left, {b, true}, low, &a->key, removed, added, changed);
      DiffAt(a_right, {b, true}, &a->key, high, removed, added, changed);
    } else {
      added(b->key, b->value);
      DiffAt({a, true}, b_left, low, &b->key, removed, added, changed);
      DiffAt({a, true}, b_right, &b->key, high, removed, added, changed);
    }
  }

  NodePtr root_;
  size_t size_ = 0;
  [[no_unique_address]] Compare compare_;
};

}  // namespace discovery::persistent
