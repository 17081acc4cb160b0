import CeleriacCore
import Testing

@testable import CeleriacCoordination

@Suite struct GlobalLimitTests {
    @Test func burstIsATenthOfASecondOfTokens() throws {
        #expect(try GlobalLimit(name: "a", rate: "100/s").burst == 10)
        #expect(try GlobalLimit(name: "a", rate: "5/s").burst == 1)
        #expect(try GlobalLimit(name: "a", rate: "100/s", burst: 3).burst == 3)
    }

    @Test func longKeysAreHashedIntoValidQueueNames() {
        let long = String(repeating: "k", count: 400)
        let name = CoordinationTopology.uniqueQueue(long)
        #expect(name.utf8.count < 255)
        #expect(name != CoordinationTopology.uniqueQueue(long + "x"))
        #expect(CoordinationTopology.uniqueQueue("short") == "celeriac.unique.short")
    }

    @Test func completedIDsAreBounded() {
        let ids = CompletedIDs(capacity: 3, ttl: .seconds(60))
        for i in 0..<5 { ids.insert("id\(i)") }
        #expect(ids.count == 3)
        #expect(!ids.contains("id0"))
        #expect(ids.contains("id4"))
    }

    @Test func uuidIDsArePackedExactlyAndOtherIDsKeptAsText() {
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e"
        #expect(IDKey(id) == IDKey(String(id)))
        #expect(IDKey(id) == .uuid(0x0f8f_ad5b_d9cb_469f, 0xa165_7086_7728_950e))
        // Not the canonical lowercase form: kept as text, so it never equals the packed lowercase id.
        #expect(IDKey(id.uppercased()) == .text(id.uppercased()))
        #expect(IDKey(id.uppercased()) != IDKey(id))
        #expect(IDKey("0f8fad5b_d9cb-469f-a165-70867728950e") == .text("0f8fad5b_d9cb-469f-a165-70867728950e"))
        #expect(IDKey("short") == .text("short"))

        let ids = CompletedIDs(capacity: 2, ttl: .seconds(60))
        ids.insert(id)
        ids.insert(id.uppercased())
        #expect(ids.contains(id) && ids.contains(id.uppercased()))
        #expect(!ids.contains("1f8fad5b-d9cb-469f-a165-70867728950e"))
        ids.insert("1f8fad5b-d9cb-469f-a165-70867728950e")
        #expect(!ids.contains(id), "the oldest went when the third came")
        #expect(ids.count == 2)
    }
}
