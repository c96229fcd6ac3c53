package varlink

// keySet finds repeated keys: a scan while there are few, a map past that,
// so that a million keys stay linear. A message naming a key twice is refused:
// encoding/json keeps the last of them silently, so two readers of one message
// (a proxy that checks the first "method", a dispatcher that runs the second)
// could disagree.
type keySet struct {
	few  []string
	many map[string]bool
}

// add reports whether key was already in the set.
func (s *keySet) add(key string) bool {
	if s.many == nil && len(s.few) == 8 {
		s.many = make(map[string]bool, 16)
		for _, k := range s.few {
			s.many[k] = true
		}
	}
	if s.many != nil {
		if s.many[key] {
			return true
		}
		s.many[key] = true
		return false
	}
	for _, k := range s.few {
		if k == key {
			return true
		}
	}
	s.few = append(s.few, key)
	return false
}
