/// RabbitMQ's topic-exchange matching: words separated by `.`, `*` matches one word, `#` matches zero or more.
enum TopicPattern {
    static func matches(_ pattern: String, _ key: String) -> Bool {
        let p = pattern.split(separator: ".", omittingEmptySubsequences: false)
        let k = key.split(separator: ".", omittingEmptySubsequences: false)
        var memo: [Int: Bool] = [:]
        func match(_ i: Int, _ j: Int) -> Bool {
            let slot = i * (k.count + 1) + j
            if let known = memo[slot] { return known }
            let result: Bool
            if i == p.count {
                result = j == k.count
            } else if p[i] == "#" {
                // `#` takes zero words, or one more and stays.
                result = match(i + 1, j) || (j < k.count && match(i, j + 1))
            } else if j < k.count, p[i] == "*" || p[i] == k[j] {
                result = match(i + 1, j + 1)
            } else {
                result = false
            }
            memo[slot] = result
            return result
        }
        return match(0, 0)
    }
}
